"""Results where researchers work: dd.api's tables convert to pandas, curves come wide as
well as long, a sweep's result and handle print a short summary, and a running sweep's
handle gives its rows and provisional curves from its first moment on."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from dd import api
from dd.handle import SweepHandle
from dd.plan.sweep import parse_spec
from dd.spec.ids import trial_id
from dd.store.schema import pack_table
from dd.store.sweep import SweepStore

SPEC = {
    "name": "frames",
    "data": {"name": "mnist1d", "n_train": 120, "train_pool": 400, "n_test": 300},
    "model": {"name": "mlp", "width": 12},
    "train": {"batch_size": 40, "epochs": 4, "eval_points": 2},
    "grid": {"model.width": [8, 12, 16], "seed": [0, 1]},
}


def _errors(width: int, seed: int, epoch: int) -> dict:
    test = 0.5 - 0.01 * width + 0.02 * seed + 0.05 / epoch
    return {"test_error": test, "train_error": test / 2, "test_loss": 2 * test}


def store_rows(root, trials=None, *, partial=False, spec=SPEC) -> SweepStore:
    """Fabricated rows (two evaluation points each) of ``trials`` (default: all) of ``spec``,
    as a finished pack, or a running one's rows so far (``partial``), with the spec stored."""
    loaded = parse_spec(spec)
    store = SweepStore(root, loaded.name)
    chosen = [t for t in loaded.trials if trials is None or trial_id(t) in trials]
    rows = [
        [
            {"step": 3 * e, "epoch": e, **_errors(t.model.width, t.seed, e)}
            for e in (2, 4)  # the evaluation points
        ]
        for t in chosen
    ]
    table = pack_table(
        sweep=loaded.name,
        pack_id="p0",
        trial_ids=[trial_id(t) for t in chosen],
        trials=chosen,
        rows=rows,
        wall_time_s=0.0,
        jax_version="none",
        partial=partial,
    )
    (store.write_partial if partial else store.write_pack)("p0", table)
    store.write_spec(loaded.mapping)
    return store


def test_load_and_query_give_dataframes(tmp_path):
    store_rows(tmp_path)
    frame = api.load("frames", tmp_path).to_pandas()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 12
    assert frame.groupby("model_width")["test_error"].count().to_dict() == {8: 4, 12: 4, 16: 4}
    trials = api.query("SELECT model_width, seed FROM trials", "frames", tmp_path).to_pandas()
    assert sorted(trials["model_width"]) == [8, 8, 12, 12, 16, 16]


def test_curves_come_wide_one_column_per_metric_with_its_interval(tmp_path):
    store_rows(tmp_path)
    long = api.curves("frames", tmp_path)["model_wise"]
    wide = long.wide()
    for metric in ("test_error", "train_error", "test_loss"):
        assert {metric, f"{metric}_ci_low", f"{metric}_ci_high", f"{metric}_n_seeds"} <= set(
            wide.column_names
        )
    assert "metric" not in wide.column_names and wide.num_rows == 3  # one row per width
    frame = wide.to_pandas().set_index("x")
    points = long.points.to_pandas()
    at_12 = points[(points.metric == "test_error") & (points.x == 12.0)].iloc[0]
    assert frame.loc[12.0, "test_error"] == at_12["mean"]
    assert frame.loc[12.0, "test_error_ci_high"] == at_12["ci_high"]
    assert frame.loc[12.0, "test_error_n_seeds"] == 2
    assert frame.loc[12.0, "test_error"] == pytest.approx(0.5 - 0.12 + 0.01 + 0.05 / 4)
    by_kind = api.curves("frames", tmp_path, wide=True)
    assert by_kind["model_wise"].equals(wide) and "epoch_wise" in by_kind
    epochs = by_kind["epoch_wise"]  # one row per series (width) and epoch
    assert epochs.num_rows == 6 and "model_width" in epochs.column_names


def _handle(tmp_path, spec=SPEC) -> tuple[SweepHandle, threading.Event]:
    """A handle whose sweep runs until cancelled, having written nothing."""
    loaded = parse_spec(spec)
    handle = SweepHandle(loaded.name, tmp_path, lambda stop: stop.wait(60), spec=loaded)
    return handle, handle._stop


def test_a_running_sweeps_handle_gives_rows_and_curves_from_the_first_moment(tmp_path):
    handle, _ = _handle(tmp_path)
    try:
        rows = handle.rows()
        assert rows is not None and rows.num_rows == 0 and "test_error" in rows.column_names
        assert rows.to_pandas().empty
        assert handle.curves() == {}, "no rows yet: no curve, and no error"
        status = handle.status()
        assert (status["planned"], status["done"], status["failed"]) == (6, 0, 0), status
        first = [trial_id(t) for t in parse_spec(SPEC).trials if t.model.width == 8]
        store = SweepStore(tmp_path, "frames")
        with store.running("p0", trials=4):  # a running pack (its record), its rows so far
            store_rows(tmp_path, set(first), partial=True)
            assert handle.rows().num_rows == 4 and all(handle.rows()["partial"].to_pylist())
            curves = handle.curves()
            assert curves["model_wise"].wide()["x"].to_pylist() == [8.0], "provisional curves"
            assert handle.status()["done"] == 0, "partial rows are not done trials"
            text = repr(handle)
            assert text.startswith("frames: running; 6 trials planned: 0 done, 0 failed"), text
            assert len(text.splitlines()) <= 3
    finally:
        handle.cancel()
        handle.wait(60)
    assert repr(handle).startswith("frames: ended; 6 trials planned: 0 done, 0 failed")


@pytest.mark.slow
def test_a_sweep_result_prints_a_short_summary_with_the_verdicts(tmp_path):
    from dd.run.schedule import SweepReport

    store_rows(tmp_path)
    loaded = parse_spec(SPEC)
    report = SweepReport(planned=6, already_stored=0, packs=1, trials_run=6, wall_time_s=2.0)
    result = api.result_of(loaded, SweepStore(tmp_path, "frames"), report, curves=True)
    text = str(result)
    assert repr(result) == text
    lines = text.splitlines()
    assert lines[:2] == [
        "frames: ran 6 trials in 2.0s",
        "frames: 6 trials planned: 6 done, 0 failed",
    ]
    verdicts = [line for line in lines if line.startswith(("model-wise", "epoch-wise"))]
    assert verdicts and set(verdicts) <= set(result.lines), "the verdict lines, as dd sweep's"
    assert lines[-1].startswith("results: ") and "result.lines" in lines[-1]
    assert len(lines) < len(result.lines) + 2, "shorter than the full output"
    assert not any(line.startswith("figure: ") for line in lines)
