"""The aggregator's pure functions on hand-made tables: threshold, peak, intervals, selections."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy import stats

from dd.curves import (best_rows, final_rows, interpolation_threshold, mean_ci,
                       peak_index, sweep_curves)
from dd.spec import parse_spec, trial_id


def test_threshold_is_the_first_capacity_below_tolerance():
    xs = np.array([1, 2, 4, 8, 16])
    assert interpolation_threshold(xs, np.array([0.5, 0.2, 0.009, 0.0, 0.0]), 0.01) == 4
    assert interpolation_threshold(xs, np.array([0.5, 0.2, 0.1, 0.1, 0.1]), 0.01) is None


def test_peak_ignores_the_underfitting_left_arm():
    xs = np.array([1, 2, 4, 8, 16, 32])
    test_error = np.array([0.9, 0.5, 0.4, 0.6, 0.45, 0.3])  # left arm higher than the peak
    assert xs[peak_index(xs, test_error, threshold=8)] == 8
    assert xs[peak_index(xs, test_error, threshold=None)] == 8


def test_mean_ci_is_the_student_t_interval():
    values = np.array([1.0, 2.0, 4.0])
    mean, lo, hi = mean_ci(values)
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    assert mean == 7 / 3 and np.isclose(hi - mean, half) and np.isclose(mean - lo, half)
    assert mean_ci(np.array([5.0])) == (5.0, 5.0, 5.0)


def _table(spec, rows):
    records = []
    for t, per_eval in zip(spec.trials, rows):
        for step, (train_error, test_error) in enumerate(per_eval, start=1):
            records.append({"trial_id": trial_id(t), "status": "ok", "step": step,
                            "epoch": step, "seed": t.seed, "model_width": t.model.width,
                            "train_error": train_error, "test_error": test_error})
    return pa.Table.from_pylist(records)


def test_final_best_and_epoch_wise_selections():
    spec = parse_spec({"name": "c", "data": {"name": "mnist1d", "n_train": 200},
                       "model": {"name": "mlp", "width": 2},
                       "grid": {"model.width": [2, 8], "seed": [0, 1]}})
    # per trial, (train_error, test_error) at epochs 1, 2, 3
    rows = [[(0.5, 0.6), (0.3, 0.5), (0.2, 0.55)], [(0.5, 0.6), (0.3, 0.4), (0.2, 0.45)],
            [(0.4, 0.5), (0.0, 0.3), (0.0, 0.35)], [(0.4, 0.5), (0.0, 0.3), (0.0, 0.25)]]
    table = _table(spec, rows)
    assert final_rows(table)["step"].to_pylist() == [3, 3, 3, 3]
    assert sorted(best_rows(table)["test_error"].to_pylist()) == [0.25, 0.3, 0.4, 0.5]
    curves, left_out = sweep_curves(table, spec)
    kinds = {c.kind: c for c in curves}
    assert set(kinds) == {"model_wise", "model_wise_best", "epoch_wise"} and left_out == 0
    final = {(r["x"], r["metric"]): r["mean"] for r in kinds["model_wise"].points.to_pylist()}
    assert np.isclose(final[(8, "test_error")], 0.3) and np.isclose(final[(2, "test_error")], 0.5)
    epoch = kinds["epoch_wise"]
    assert epoch.series == ("model.width",)
    marks = {m["model_width"]: m for m in epoch.landmarks.to_pylist()}
    assert marks[8]["threshold_x"] == 2, "width 8 interpolates at epoch 2"
    assert marks[2]["threshold_x"] is None


def test_curves_leave_out_trials_of_other_specs_and_diverged_ones():
    spec = parse_spec({"name": "c", "data": {"name": "mnist1d", "n_train": 200},
                       "model": {"name": "mlp", "width": 2},
                       "grid": {"model.width": [2, 8]}})
    table = _table(spec, [[(0.1, 0.2)], [(0.1, 0.2)]])
    status = table["status"].to_pylist()
    status[1] = "diverged"
    table = table.set_column(table.column_names.index("status"), "status", pa.array(status))
    foreign = _table(parse_spec({**spec.mapping, "seed": 7}), [[(0.9, 0.9)], [(0.9, 0.9)]])
    curves, left_out = sweep_curves(pa.concat_tables([table, foreign]), spec)
    assert left_out == 1
    points = curves[0].points.to_pylist()
    assert {r["x"] for r in points} == {2} and all(r["mean"] != 0.9 for r in points)
