"""The early Ray start as a handle the run takes up (``dd.run.cluster.EarlyStart``), without
Ray: the start is a stand-in callable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dd.run.cluster import EarlyStart, start_ray
from dd.spec.errors import DDError


def test_the_run_taking_an_early_start_waits_for_it_to_end():
    release, order = threading.Event(), []

    def begin() -> bool:
        release.wait()
        order.append("started")
        return False

    early = EarlyStart(begin)
    threading.Timer(0.05, release.set).start()
    early.take()
    assert order == ["started"], "take returns only once the start has ended"


def test_what_the_early_start_raised_is_raised_by_the_run_that_takes_it_up_once():
    def begin() -> bool:
        raise DDError("--address x:1: no answer within 1s")

    early = EarlyStart(begin)
    with pytest.raises(DDError, match="no answer"):
        start_ray("local", timeout=1.0, early=early)
    early.take()  # a refined sweep's next round: the start is already taken up


def test_two_early_starts_share_nothing():
    failing, fine = EarlyStart(lambda: 1 / 0), EarlyStart(lambda: False)
    fine.take()  # not the other handle's error
    with pytest.raises(ZeroDivisionError):
        failing.take()


def test_taking_an_early_start_puts_the_callers_sigterm_handler_back():
    def mine(signum, frame):
        """The caller's handler."""

    before = signal.signal(signal.SIGTERM, mine)
    try:
        early = EarlyStart(lambda: False)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as Ray's core worker leaves it
        early.take()
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_local_ray_starts_without_a_dashboard_and_without_the_workers_output(monkeypatch):
    """What dd asks of a local Ray (issue 32, item 8f): no dashboard head and, unless
    ``debug``, no workers' output forwarded. Ray 2.60 still starts its DashboardAgent and
    RuntimeEnvAgent from the raylet (docs/faults.md says what they do after a SIGKILL)."""
    import ray

    calls: list[dict] = []
    this_test = threading.current_thread()

    def init(**options):
        # only this test's starts: an earlier test's early Ray start (``start_ray_soon``'s
        # thread, seen calling here under make test-fast) may still be retrying in this process
        if threading.current_thread() is this_test:
            calls.append(options)

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    for debug in (False, True):
        start_ray("local", timeout=5.0, local_cpus=1, debug=debug)
    assert [c["include_dashboard"] for c in calls] == [False, False]
    assert [c["log_to_driver"] for c in calls] == [False, True]


def test_routed_ray_messages_go_to_the_file_not_the_terminal(tmp_path, monkeypatch, capsys):
    """Ray's error printer (a dead worker, a task retried) and its logger write to the run's
    log once ``route_ray_output`` has run, nothing to stdout or stderr."""
    import logging

    import ray._private.worker as ray_worker

    from dd.run.cluster import route_ray_output

    monkeypatch.setattr(ray_worker, "print_to_stdstream", ray_worker.print_to_stdstream)
    ray_logger = logging.getLogger("ray")
    monkeypatch.setattr(ray_logger, "handlers", list(ray_logger.handlers))
    log = tmp_path / "logs" / "ray.log"
    route_ray_output(log)
    message = "Task PackWorker.run failed. There are 2 retries remaining"
    ray_worker.print_to_stdstream(
        {"lines": [message], "pid": "raylet", "is_err": False}, ignore_prefix=False
    )
    ray_logger.error("a record of Ray's logger")
    out, err = capsys.readouterr()
    assert out == "" and err == "", (out, err)
    text = log.read_text()
    assert "(raylet)" in text and message in text and "a record of Ray's logger" in text


DD_LINE = r"^(stale: |pack [0-9a-f]+( failed)?: |\d+ packs failed; |no curves: )"


@pytest.mark.ray
@pytest.mark.slow
def test_ray_messages_of_a_dying_worker_go_to_the_runs_log_not_the_terminal(tmp_path):
    """A pack's worker process dies (``exit_after_evaluation``): Ray's own messages about it
    ("(raylet) A worker died ...") reach neither stdout nor stderr; stderr holds dd's lines
    only (the pack's rerun, then its failure), and the failure line names the run's log, which
    holds Ray's messages (issue 32, item 2)."""
    import re
    from pathlib import Path

    import yaml

    from faultsite.dd_faults import env as faults_env
    from helpers import run_dd

    spec = {
        "name": "stale",
        "data": {"name": "mnist1d", "n_train": 120, "train_pool": 400, "n_test": 300},
        "model": {"name": "mlp", "width": 12},
        "train": {"batch_size": 40, "epochs": 5, "eval_points": 3},
        "grid": {"model.width": [8, 12], "seed": [0, 1]},
        "resources": {"max_pack": 4, "retries": 1},
    }
    path = tmp_path / "stale.yaml"
    path.write_text(yaml.safe_dump(spec))
    results = tmp_path / "r"
    done = run_dd(
        "sweep",
        path,
        "--results",
        results,
        "--cpus",
        "1",
        env=faults_env(exit_after_evaluation=True),
        timeout=400,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "(raylet)" not in done.stdout + done.stderr, done.stdout + done.stderr
    for line in done.stderr.strip().splitlines():
        assert re.match(DD_LINE, line), f"not a dd line: {line!r}\n{done.stderr}"
    (said,) = [line for line in done.stderr.splitlines() if "packs failed;" in line]
    log = Path(said.split("Ray's own messages: ", 1)[1])
    assert log.parent == results / "stale" / "logs", said
    text = log.read_text()
    assert "(raylet)" in text and "A worker died" in text, text[-3000:]


NOTEBOOK = """
import sys, types
events = type("Events", (), {"register": lambda self, event, callback: None})()
shell = type("ZMQInteractiveShell", (), {"events": events})()  # what Jupyter's kernel runs
ipython = types.ModuleType("IPython")
ipython.get_ipython = lambda: shell
sys.modules["IPython"] = ipython
if sys.argv[1:] == ["dd"]:
    import dd.run
import ray
print("imported")
"""


@pytest.mark.slow
def test_importing_ray_through_dd_in_a_notebook_says_nothing_of_ipywidgets(tmp_path):
    """Ray's import logs "Missing packages: ['ipywidgets']" in a Jupyter kernel without
    ipywidgets (its context's widget, which dd never shows); dd quiets that one logger."""
    script = tmp_path / "notebook.py"
    script.write_text(NOTEBOOK)
    root = str(Path(__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": root}

    def run(*args):
        done = subprocess.run(
            [sys.executable, str(script), *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0 and "imported" in done.stdout, done.stderr
        return done.stdout + done.stderr

    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        assert "Missing packages: ['ipywidgets']" in run(), "the message the test is about"
    else:
        pytest.skip("ipywidgets is installed: Ray has nothing to say of it")
    assert "Missing packages" not in run("dd")
