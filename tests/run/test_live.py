"""A sweep seen while it runs: a pack's rows so far in ``dd query`` (``partial`` true), its
epoch, errors and ETA in ``dd status``, provisional curves from ``dd curves``; once it ends,
one set of final rows equal to an unwatched run's (``dd.run.worker.LiveRows``)."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from dd.analysis.query import query_arrow
from dd.cli import main
from dd.engine import hooks
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from dd.run.worker import run_pack
from dd.store.sweep import SweepStore

SPEC = {
    "name": "live",
    "data": {"name": "mnist1d", "n_train": 120, "train_pool": 400, "n_test": 300},
    "model": {"name": "mlp", "width": 12},
    "train": {"batch_size": 40, "epochs": 5, "eval_points": 3},
    "grid": {"model.width": [8, 12], "seed": [0, 1]},
}
UNSTABLE = {"wall_time_s", "partial"}  # how long it took, and whether it was still running


def _run(root, watch=None):
    spec = parse_spec(SPEC)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    store = SweepStore(root, spec.name)
    store.write_spec(spec.mapping)
    remove = hooks.add("after_evaluation", watch) if watch else (lambda: None)
    try:
        run_pack(spec.name, str(root), pack, spec.resources)
    finally:
        remove()
    return store


@pytest.mark.slow
def test_a_running_pack_is_seen_in_status_query_and_curves(tmp_path, capsys):
    seen = {}

    def look(store, pack_id, epoch):
        if seen:
            return
        root = store.location
        assert main(["status", "live", "--results", root]) == 0
        seen["status"] = capsys.readouterr().out
        rows = query_arrow("SELECT partial, trial_id FROM results", root, "live")
        seen["partial"] = pc.all(rows["partial"]).as_py() and rows.num_rows
        assert main(["curves", "live", "--results", root]) == 0
        seen["curves"] = capsys.readouterr().out
        seen["stored"] = store.stored_trial_ids()

    store = _run(tmp_path / "watched", look)
    assert "epoch 1/5" in seen["status"] and "ETA" in seen["status"], seen["status"]
    assert "test error" in seen["status"]
    assert seen["partial"] == 4, "the 4 trials' rows so far, all marked partial"
    assert seen["curves"].startswith("running: 1 pack (4 trials, widths 8-12) at epoch 1 of 5")
    assert seen["stored"] == set(), "partial rows never count as stored trials"
    assert store.partial_files() == [] and not list((store.dir / "partial").glob("*.parquet"))
    final = query_arrow("SELECT * FROM results ORDER BY trial_id, step", tmp_path / "watched")
    assert not any(final["partial"].to_pylist()), "no partial row left"
    plain_store = _run(tmp_path / "plain")
    plain = query_arrow("SELECT * FROM results ORDER BY trial_id, step", plain_store.location)
    keep = [c for c in final.column_names if c not in UNSTABLE]
    np.testing.assert_equal(  # the same rows as a run nobody watched (NaN equal to NaN)
        final.select(keep).to_pydict(), plain.select(keep).to_pydict()
    )


@pytest.mark.slow
def test_a_background_sweep_is_watched_waited_for_and_cancelled(ray_local, tmp_path):
    """dd.api.sweep(wait=False): a handle at once; status, rows and curves read the store
    while it runs; wait() gives the sweep's result; cancel() stops a second one, whose
    wait() raises Cancelled."""
    import copy

    from dd import api
    from dd.spec.errors import Cancelled

    handle = api.sweep(copy.deepcopy(SPEC), tmp_path, wait=False, quiet=True)
    assert handle.status()["stored_trials"] in range(0, 5)  # whatever it reached by now
    result = handle.wait(timeout=600)
    assert result.report.trials_run == 4 and not handle.running()
    status = handle.status()
    assert status["stored_trials"] == 4 and status["packs_running"] == []
    rows = handle.rows()
    assert rows.num_rows == 4 * 3 and not any(rows["partial"].to_pylist())
    assert "model_wise" in handle.curves()

    longer = {**copy.deepcopy(SPEC), "name": "live2", "train": {**SPEC["train"], "epochs": 500}}
    second = api.sweep(longer, tmp_path, wait=False, quiet=True)
    second.cancel()
    with pytest.raises(Cancelled, match="cancelled; finished packs are kept"):
        second.wait(timeout=300)
    assert second.status()["stored_trials"] == 0
    assert second.status()["packs_running"] == [], "the cancelled run left no pack running"
    assert second.rows().num_rows == 0, "a cancelled pack's rows so far are stale, not rows"
    from dd.run.pool import POOL

    assert POOL.idle() == 0, "a cancelled run's workers are not kept warm"


@pytest.mark.slow
def test_dd_status_watch_refreshes_until_no_pack_runs(tmp_path):
    """``dd status --watch`` (not a terminal: plain blocks) shows a running pack's progress
    at each refresh and returns once nothing runs."""
    import threading

    from helpers import start_dd

    spec = parse_spec(SPEC)
    store = SweepStore(tmp_path, spec.name)
    store.write_spec(spec.mapping)
    started, finish = threading.Event(), threading.Event()

    def hold():
        with store.running("p", trials=4, widths=[8, 12]) as update:
            update(epoch=2, epochs=5, test_error=0.4, train_error=0.2, epochs_per_s=1.0, eta_s=3)
            started.set()
            finish.wait(120)

    holder = threading.Thread(target=hold)
    holder.start()
    started.wait(30)
    watcher = start_dd("status", "live", "--results", tmp_path, "--watch", "0.2")
    seen = []
    for line in watcher.stdout:  # two refreshes showing the running pack, however slow
        seen.append(line)
        if sum("epoch 2/5" in s for s in seen) == 2:
            break
    finish.set()
    holder.join()
    rest, _ = watcher.communicate(timeout=60)
    out = "".join(seen) + rest
    assert watcher.returncode == 0
    assert out.count("epoch 2/5") >= 2, out
    assert out.rstrip().splitlines()[-1].startswith("live: 4 trials planned"), "last: none running"


def test_progress_is_a_bar_in_a_notebook_and_plain_lines_elsewhere(monkeypatch, capsys):
    """dd.api.sweep's progress: rich's bar where a notebook can show it (stderr is no terminal
    there), one plain line per step elsewhere."""
    import dd.run.progress

    assert dd.run.progress.in_notebook() is False, "a pytest process is no Jupyter kernel"
    monkeypatch.setattr(dd.run.progress, "in_notebook", lambda: True)
    assert dd.run.progress.Progress(4, label="nb")._bar is not None
    monkeypatch.setattr(dd.run.progress, "in_notebook", lambda: False)
    plain = dd.run.progress.Progress(4, label="plain")
    assert plain._bar is None
    plain.advance(2)
    assert capsys.readouterr().err.startswith("plain: 2/4 trials done")


@pytest.mark.slow
def test_the_running_record_moves_between_evaluation_points(tmp_path, monkeypatch):
    """run_pack's running record (``LiveRows.progress``) gets the epoch reached after each
    call to the device, not only at the evaluation points: here 1, 2, 5 are evaluated and the
    record also reads 3 and 4 (the engine's clock moves 100 s per reading, so training
    stops to report after every epoch), with its first sample and a steady rate."""
    import dd.engine.train as train_module
    from dd.run.worker import LiveRows

    clock = iter(range(0, 10**9, 100))
    monkeypatch.setattr(train_module.time, "monotonic", lambda: float(next(clock)))
    seen = []
    real = LiveRows.progress

    def progress(self, epoch):
        real(self, epoch)
        seen.append(self.store.running_record(self.pack.id))

    monkeypatch.setattr(LiveRows, "progress", progress)
    _run(tmp_path)
    assert [r["reached"] for r in seen] == [1, 2, 3, 4, 5]
    assert {r["epoch"] for r in seen[2:4]} == {2}, "no evaluation at epochs 3 and 4"
    assert all(r["first_reached"] == 1 and r["started_at"] <= r["first_at"] for r in seen)
    assert seen[-1]["epochs_per_s"] > 0 and seen[-1]["eta_s"] == 0


def _driver(store, **more):
    import time

    now = time.time()
    record = {
        "started": "2025-01-01T00:00:00",
        "started_at": now - 66,
        "updated_at": now,
        "eta_s": 90.0,
        "packs": 5,
        "packs_done": 1,
        "packs_failed": 0,
        "packs_running": 2,
        "slots": 2,
        "trials": 15,
        "trials_done": 3,
    }
    store.write_driver(record | more)


def test_dd_status_shows_the_sweeps_eta_and_each_packs_epoch_reached(tmp_path, capsys):
    spec = parse_spec(SPEC)
    store = SweepStore(tmp_path, spec.name)
    store.write_spec(spec.mapping)
    _driver(store)
    record = {"epoch": 2, "reached": 4, "epochs": 5, "test_error": 0.4, "epochs_per_s": 2.0}
    with store.running("p", trials=4, widths=[8, 12]) as update:
        update(**record, eta_s=0.5)
        assert main(["status", "live", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1/5 packs done, 2 running; 0h01m06s elapsed, sweep ETA 0h01m30s" in out, out
    assert "epoch 4/5, test error 0.400 (at epoch 2), 2.00 epochs/s, ETA 0h00m00s" in out, out
    store.clear_driver()
    assert main(["status", "live", "--results", str(tmp_path)]) == 0
    assert "sweep ETA" not in capsys.readouterr().out, "no driver, no sweep ETA"


def test_the_handle_shows_the_sweeps_eta_and_the_drivers_record(tmp_path):
    import threading

    from dd.handle import SweepHandle

    spec = parse_spec(SPEC)
    store = SweepStore(tmp_path, spec.name)
    written = threading.Event()

    def run(stop):
        _driver(store)
        written.set()
        stop.wait(60)

    handle = SweepHandle(spec.name, tmp_path, run)
    written.wait(30)
    status = handle.status()
    handle.cancel()
    handle.wait(60)
    assert 80 < status["eta_s"] <= 90 and status["driver"]["packs_done"] == 1, status


def test_the_live_report_shows_the_sweeps_eta_and_the_running_drivers_wall_time(tmp_path):
    from dd.analysis.report import _driver_runs, _live

    store = SweepStore(tmp_path, "live")
    assert _driver_runs(store) == (0, 0.0)
    _driver(store)
    with store.running("p", trials=4, widths=[8, 12]) as update:
        update(epoch=2, reached=3, epochs=5, epochs_per_s=1.0, eta_s=2.0)
        page = "".join(_live(store, "running: 1 pack"))
    runs, seconds = _driver_runs(store)
    assert runs == 1 and 66 <= seconds < 120, "the running driver's time so far, not 0.0"
    assert "sweep ETA 0h01m30s" in page and "epoch 3/5" in page, page
