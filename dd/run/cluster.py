"""The Ray cluster a sweep runs on: is it reachable, starting or joining it, and can one of
its nodes hold a pack?

All are settled before anything is submitted or written. An unreachable address (a closed
port, or a listener that never answers) would otherwise hang ``ray.init`` for minutes, and a
pack no node can hold would wait forever behind the autoscaler's messages.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dd.plan.sweep import Resources
from dd.run.probe import probe_address
from dd.spec.errors import DDError, SpecError, one_line
from dd.spec.settings import Settings

LOCAL_START_TRIES = 2  # under load, a local node's start-up can time out once


def check_fits(resources: Resources, nodes: list[dict[str, Any]]) -> None:
    """Raise a SpecError (exit 2) unless one alive node of ``nodes`` (``ray.nodes()``) has
    the CPUs, GPUs and memory one pack asks for."""
    wanted = {"CPU": resources.cpus, "GPU": resources.gpus, "memory": resources.memory_gb * 2**30}
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    if any(all(have.get(k, 0.0) >= v for k, v in wanted.items() if v > 0) for have in alive):
        return
    largest = {k: max((have.get(k, 0.0) for have in alive), default=0.0) for k in wanted}
    asked = f"cpus {resources.cpus:g}, gpus {resources.gpus:g}, memory_gb {resources.memory_gb:g}"
    offered = (
        f"CPUs {largest['CPU']:g}, GPUs {largest['GPU']:g}, "
        f"memory {largest['memory'] / 2**30:.1f} GB"
    )
    raise SpecError(
        "resources",
        f"no node of the cluster can hold one pack ({asked}); its "
        f"{len(alive)} node{'' if len(alive) == 1 else 's'} offer at most {offered}; "
        "lower resources or add a node that has them",
    )


def ray_options(settings: Settings, *, quiet: bool, debug: bool) -> dict[str, Any]:
    """``start_ray``'s options for a driver run with ``settings``: without an address, the
    warm instance's state file (``dd.run.warm``) is looked at first."""
    from dd.run.warm import state_path

    return {
        "address": settings.address or "local",
        "quiet": quiet,
        "local_cpus": settings.cpus,
        "debug": debug,
        "timeout": settings.connect_timeout_s,
        "warm": None if settings.address else state_path(settings.warm_state),
    }


def start_ray(
    address: str,
    *,
    timeout: float,
    quiet: bool = False,
    local_cpus: int | None = None,
    debug: bool = False,
    early: EarlyStart | None = None,
    warm: Path | None = None,
) -> None:
    """Join ``address``, or start a fresh local instance for ``"local"``.

    ``"local"`` matters: a bare ``ray.init()`` attaches to any Ray instance already running
    on the machine (another sweep's, say) and would queue behind its work. ``local_cpus``
    caps a local instance (a laptop kept usable); a cluster sets its own. An address must
    answer within ``timeout`` seconds. A local start that fails (under load Ray's node can
    time out during start-up) is tried once more before it is an error. Ray's own messages
    (its warnings, the workers' output) show with ``debug`` only. ``early``: the start
    ``start_ray_soon`` began for this run, waited for first (what it raised is raised here).
    ``warm``: for ``"local"``, the state file of ``dd up``'s warm instance (``dd.run.warm``),
    joined instead of a fresh instance while it answers (``local_cpus`` is then its own).
    """
    if early is not None:  # begun by start_ray_soon: its outcome first
        early.take()
    options = {"quiet": quiet, "local_cpus": local_cpus, "debug": debug, "warm": warm}
    _start_ray(address, timeout=timeout, **options)


def _start_ray(
    address: str,
    *,
    timeout: float,
    quiet: bool,
    local_cpus: int | None,
    debug: bool,
    warm: Path | None = None,
) -> bool:
    """``start_ray`` without an early start; whether this call started or joined Ray."""
    import ray

    with _STARTING:  # an early start left behind by a refused run may still be under way
        if ray.is_initialized():
            return False
        if address == "local" and warm is not None and _join_warm(ray, warm, quiet, debug):
            return True
        _join(ray, address, timeout=timeout, quiet=quiet, local_cpus=local_cpus, debug=debug)
        return True


def _join_warm(ray, path: Path, quiet: bool, debug: bool) -> bool:
    """Join the warm instance recorded in ``path`` when it answers (saying so); whether it
    was joined. One that is gone, or refuses the driver, is said: a fresh instance follows."""
    from dd.run import warm

    say = (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr))
    state = warm.find(path, say)
    if state is None:
        return False
    try:
        options = {"quiet": quiet, "local_cpus": None, "debug": debug}
        _join(ray, state.address, timeout=warm.PROBE_S, namespace=warm.NAMESPACE, **options)
    except DDError as e:
        ray.shutdown()
        say(f"dd: the warm instance at {state.address} refused this run ({e}); starting fresh")
        return False
    say(warm.using(state))
    return True


def _join(
    ray,
    address: str,
    *,
    timeout: float,
    quiet: bool,
    local_cpus,
    debug: bool,
    namespace: str | None = None,
) -> None:
    probe_address(address, timeout)
    options = {
        "address": address,
        "namespace": namespace,
        "num_cpus": local_cpus if address == "local" else None,
        "include_dashboard": False,
        "log_to_driver": debug and not quiet,
        "configure_logging": True,
        "logging_level": logging.INFO if debug else logging.ERROR,
    }
    if address != "local":
        try:
            _init_keeping_sigterm(ray, options)
        except (ConnectionError, TimeoutError, RuntimeError) as e:
            raise DDError(
                f"--address {address}: cannot join the Ray cluster ({one_line(e)})"
            ) from None
        return
    for attempt in range(1, LOCAL_START_TRIES + 1):
        try:
            _init_keeping_sigterm(ray, options)
            return
        except Exception as e:  # Ray raises a bare Exception when its node times out
            ray.shutdown()  # what the failed start left, before the next try
            if attempt == LOCAL_START_TRIES:
                raise DDError(
                    f"cannot start a local Ray instance after {attempt} tries ({one_line(e)}); "
                    "the machine may be overloaded: run again when it is less busy, or start "
                    "Ray yourself ('ray start --head') and pass --address"
                ) from None
            if not quiet:
                print(f"starting Ray failed ({one_line(e)}); trying once more", file=sys.stderr)


_STARTING = threading.Lock()  # one ray.init at a time in this process


class _RayOutput:
    """Where Ray's own messages in this driver process go once routed: its error messages
    (a worker died, "Task ... failed. There are 2 retries remaining", a raylet's last log
    lines with their ``[state-dump]``), which Ray prints to stdout from a thread of its own
    whatever ``log_to_driver`` says, and its loggers' records. One file at a time: the
    current run's."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.file = None
        self.handler: logging.Handler | None = None

    def write(self, data: dict, ignore_prefix: bool) -> None:
        from ray._private.worker import print_worker_logs

        with self.lock:
            if self.file is not None:
                print_worker_logs(data, self.file, ignore_prefix)

    def open(self, path) -> None:
        with self.lock:
            if self.file is not None:
                self.file.close()
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a", buffering=1, encoding="utf-8")
            ray_logger = logging.getLogger("ray")
            for handler in list(ray_logger.handlers):
                if handler is self.handler or isinstance(handler, logging.StreamHandler):
                    ray_logger.removeHandler(handler)  # Ray's own: to the terminal
            self.handler = logging.StreamHandler(self.file)
            self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            ray_logger.addHandler(self.handler)


_RAY_OUTPUT = _RayOutput()


def route_ray_output(path) -> None:
    """Send Ray's own messages in this process to the file ``path`` (appended to; its folder
    made) from now on, never to the terminal; for a run without ``--debug`` (which leaves them
    on the terminal). Ray offers no switch for its error messages: its module's printer is
    replaced, once, by one that writes to the file."""
    import ray._private.worker as ray_worker

    _RAY_OUTPUT.open(path)
    if ray_worker.print_to_stdstream != _RAY_OUTPUT.write:
        ray_worker.print_to_stdstream = _RAY_OUTPUT.write


class EarlyStart:
    """A Ray start begun in a thread while the caller plans (``start_ray_soon``), handed to the
    run that takes it up (``start_ray(early=)``). ``begin`` starts Ray and says whether it was
    this call that did; its error is kept for ``take``."""

    def __init__(self, begin: Callable[[], bool]):
        self._begin, self._done, self._error = begin, threading.Event(), None
        self._taken = False
        # Ray's core worker, started off the main thread, leaves its own SIGTERM handler (a
        # stack dump) in place: take puts this one back, from the main thread
        self._sigterm = signal.getsignal(signal.SIGTERM)
        self._thread = threading.Thread(target=self._run, name="dd ray start", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            fresh = self._begin()
        except BaseException as e:  # given to the run that takes this start up
            self._error = e
            return
        finally:
            self._done.set()
        if fresh:  # Ray's node processes die with the thread that started them (their
            threading.Event().wait()  # PR_SET_PDEATHSIG follows it): it stays, idle

    def take(self) -> None:
        """Wait for the start to end, put the caller's SIGTERM handler back and raise what the
        start raised; the first call only (a refined sweep's later rounds find Ray up)."""
        if self._taken:
            return
        self._taken = True
        self._done.wait()
        _restore_sigterm(self._sigterm)
        if self._error is not None:
            raise self._error


def start_ray_soon(
    address: str,
    *,
    timeout: float,
    quiet: bool = False,
    local_cpus: int | None = None,
    debug: bool = False,
    then: Callable[[], None] | None = None,
    warm: Path | None = None,
) -> EarlyStart:
    """Begin ``start_ray(**options)`` in a thread, then ``then()`` (start a worker, say),
    while the caller plans; the run given the returned handle (``start_ray(early=)``) waits
    for it and raises what it raised. For a run sure to need Ray: a start is seconds, of
    which planning then hides most."""
    options = {"timeout": timeout, "quiet": quiet, "local_cpus": local_cpus, "debug": debug}
    options["warm"] = warm

    def begin() -> bool:
        fresh = _start_ray(address, **options)
        if then is not None:
            then()
        return fresh

    return EarlyStart(begin)


def _init_keeping_sigterm(ray, options: dict) -> None:
    """``ray.init``, which replaces the driver's SIGTERM handler with sys.exit; the caller's
    handler is put back."""
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(**options)
    finally:
        _restore_sigterm(sigterm)


def _restore_sigterm(handler) -> None:
    """Put ``handler`` back as the SIGTERM handler (only the main thread may)."""
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
