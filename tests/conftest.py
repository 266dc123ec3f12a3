"""Shared fixtures: tiny specs on disk, one local Ray instance for the tests that need it, and
a moto S3 server on loopback for the object-store tests. (Helpers that tests import, such as
the dd subprocess runner, are in tests/helpers.py.)

Markers (registered in pyproject.toml; `make test-fast` deselects the first three): ``slow``
for a test over about 1 s, ``ray`` for one that starts Ray (given here to every test that uses
the ``ray_local`` fixture; a test that starts Ray in a subprocess is marked by hand),
``browser`` for one that drives Chromium, and ``gpu`` for one that needs a GPU: deselected
here where no GPU answers (``nvidia-smi -L``, the Makefile's own test), unless ``-m`` names
``gpu`` (`make test-gpu`) to run them on purpose. A test of the path without a GPU is marked
``helpers.without_gpu`` and skips where one answers.

`make test` runs the tests on two processes (pytest-xdist, ``--dist worksteal``), so a test may
meet a Ray instance that an earlier test of its process left running (``dd.api.sweep`` keeps
the one it started, for its warm workers): ``ray_local`` joins that one rather than calling
``ray.init`` twice. (pytest-xdist's ``loadgroup`` cannot group tests under pytest 9, whose
node ids it can no longer rename.) The modules that hold slow tests run first, so that the
run ends on quick tests in both processes.

``DD_TEST_MEMORY_LOG=FILE`` appends, after each test, one line per test process: the time, the
test, the process's resident memory now and at its peak, and the peak of the subprocesses it
waited for (MiB; a forked child counts from its parent's size), then the seconds this process
has spent compiling XLA programs so far and how many it loaded from the compilation cache --
the map for the suite's peak memory and its compile time, as ``--durations`` is for its time.

The test processes share one JAX persistent compilation cache for the session (a temporary
folder, ``pytest_configure``), and so do the pack workers and dd commands they start (it is
their ``DD_COMPILE_CACHE``, not the user's ~/.cache/dd/jax): a program that an earlier test
compiled, in any process, is loaded, not compiled again, after ``_drop_compiled_programs``
dropped it.
A test that counts compiles takes the ``no_compile_cache`` fixture.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import yaml

from helpers import CREDENTIALS, gpu_answers

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# A `dd up` instance of the user's own is never joined by a test's sweep (tests of `dd up` give
# each its own state file).
os.environ["DD_WARM_STATE"] = str(Path(tempfile.mkdtemp(prefix="dd-tests-")) / "no-warm.json")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "ray_local" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
    # Modules with slow tests first (each module's tests kept together and in order), so that
    # the two test processes end on quick tests and neither waits alone on a long one.
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_modules)
    if gpu_answers() or "gpu" in (config.option.markexpr or ""):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


def _drop_compiled_programs() -> None:
    """Drop JAX's compiled programs and hand the freed heap back to the system (glibc keeps
    it otherwise: three engine modules ended at 1419 MiB resident without the trim, 915 with
    it)."""
    if "jax" in sys.modules:
        sys.modules["jax"].clear_caches()
    gc.collect()
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@pytest.fixture(scope="module", autouse=True)
def _compiled_programs_per_module():
    """Each test module's compiled programs are dropped when it ends, so a test process's
    memory stays that of its largest module, not the sum of them all."""
    yield
    _drop_compiled_programs()


@pytest.fixture
def fresh_programs():
    """The same after each test, for a module whose tests each compile large programs of their
    own (``pytestmark = pytest.mark.usefixtures("fresh_programs")``): the ResNet-18 block
    tests held 2.6 GB by the module's end."""
    yield
    _drop_compiled_programs()


_JAX_CACHE = "DD_TEST_JAX_CACHE"
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_compiles = {"seconds": 0.0, "cache_hits": 0}


def _count_compiles() -> None:
    import jax

    def compiled(event: str, seconds: float, **kwargs) -> None:
        if event == _COMPILE_EVENT:
            _compiles["seconds"] += seconds

    def loaded(event: str, **kwargs) -> None:
        if event == _CACHE_HIT_EVENT:
            _compiles["cache_hits"] += 1

    jax.monitoring.register_event_duration_secs_listener(compiled)
    jax.monitoring.register_event_listener(loaded)


def pytest_configure(config: pytest.Config) -> None:
    """The session's JAX persistent compilation cache, set before any test module is imported
    (JAX reads the setting once, at its first compile): one folder that the controller makes
    and removes, shared with the test processes it starts (they inherit ``_JAX_CACHE``) and
    every dd command and pack worker of the session. In the test processes JAX's own threshold
    applies (only programs that took a second or more to compile are kept); pack workers keep
    every program, as they do for users (``dd.run.worker.use_compile_cache``)."""
    import jax

    if _JAX_CACHE not in os.environ:  # the controller, or a run without pytest-xdist
        os.environ[_JAX_CACHE] = tempfile.mkdtemp(prefix="dd-tests-jax-cache-")
        config.add_cleanup(lambda: shutil.rmtree(os.environ.pop(_JAX_CACHE), ignore_errors=True))
    jax.config.update("jax_compilation_cache_dir", os.environ[_JAX_CACHE])
    os.environ["DD_COMPILE_CACHE"] = os.environ[_JAX_CACHE]  # the pack workers' too
    if os.environ.get("DD_TEST_MEMORY_LOG"):
        _count_compiles()


@pytest.fixture
def no_compile_cache():
    """The persistent compilation cache off for one test, so that every program it runs is
    compiled in it (a test that counts compiles)."""
    import jax

    jax.config.update("jax_enable_compilation_cache", False)
    yield
    jax.config.update("jax_enable_compilation_cache", True)


@pytest.fixture(autouse=True)
def _memory_log(request):
    """With DD_TEST_MEMORY_LOG set, one line per test on the memory it left (see above)."""
    yield
    path = os.environ.get("DD_TEST_MEMORY_LOG")
    if not path:
        return
    with open("/proc/self/statm") as statm:
        now = int(statm.read().split()[1]) * resource.getpagesize() >> 20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss >> 10
    compiled = f"{_compiles['seconds']:.1f} {_compiles['cache_hits']}"
    line = f"{time.time():.1f} {os.getpid()} {request.node.nodeid} {now} {peak} {children}"
    line += f" {compiled}\n"
    with open(path, "a") as log:
        log.write(line)


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance shared by the tests of a session (started once, it takes seconds),
    or the one a sweep run earlier in this process started and kept."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write a spec mapping to a YAML file and return its path."""

    def write(mapping: dict, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(mapping, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="module")
def s3_endpoint():
    """``host:port`` of a moto S3 server started for this module."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def results_uri(s3_endpoint, monkeypatch) -> str:
    """A fresh bucket's ``results`` prefix, as the URI a user passes to --results."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    bucket = f"dd-{uuid.uuid4().hex[:10]}"
    pafs.S3FileSystem(
        endpoint_override=s3_endpoint, scheme="http", region="us-east-1", allow_bucket_creation=True
    ).create_dir(bucket)
    return f"s3://{bucket}/results?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
