"""The aggregator's pure functions on hand-made tables: threshold, peak, intervals, selections."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from dd.analysis.aggregate import describe, sweep_curves, write_curves
from dd.analysis.curves.base import best_rows, final_rows
from dd.analysis.curves.emc_values import emc_crossings, emc_curves, final_emc, train_sizes
from dd.analysis.curves.landmarks import (
    emc_value,
    interpolation_threshold,
    peak_index,
    sample_peak_index,
)
from dd.analysis.curves.ranges import ACCURACIES, RANGES, mean_ci, metric_range
from dd.analysis.curves.registry import curve_kinds
from dd.plan.sweep import parse_spec
from dd.spec.errors import SpecError
from dd.spec.ids import trial_id
from dd.store.schema import METRICS
from dd.store.sweep import SweepStore


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


def test_seed_bands_stay_in_the_metrics_range():
    """With 2 seeds the t-interval of a train error near 0 or 1 and of a test MSE leaves the
    metric's range; the bands are clipped to it ([0, 1] for errors, >= 0 for losses)."""
    near_zero = np.array([0.0, 0.02])
    mean, lo, hi = mean_ci(near_zero, metric_range("train_error"))
    assert (mean, lo, hi) == (0.01, 0.0, mean_ci(near_zero)[2]), "only the edge out of range"
    assert mean_ci(np.array([0.98, 1.0]), metric_range("train_error"))[2] == 1.0
    assert mean_ci(np.array([0.5, 3.0]), metric_range("test_mse"))[1] == 0.0
    spec = parse_spec(
        {
            "name": "c",
            "data": {"name": "mnist1d", "n_train": 200},
            "model": {"name": "mlp", "width": 2},
            "grid": {"model.width": [2, 8], "seed": [0, 1]},
        }
    )
    rows = [[(0.98, 0.9)], [(1.0, 0.5)], [(0.0, 0.3)], [(0.02, 0.35)]]
    table = _table(spec, rows)
    table = table.append_column("test_mse", pa.array([0.5, 3.0, 0.1, 4.0]))
    curves, _ = sweep_curves(table, spec)
    points = next(c for c in curves if c.kind == "model_wise").points.to_pylist()
    lows = {(r["metric"], r["x"]): r["ci_low"] for r in points}
    highs = {(r["metric"], r["x"]): r["ci_high"] for r in points}
    assert lows["train_error", 8] == 0.0 and highs["train_error", 2] == 1.0
    assert lows["test_mse", 2] == 0.0 and lows["test_mse", 8] == 0.0
    assert all(0 <= lows[k] <= highs[k] <= 1 for k in lows if k[0].endswith("error"))


def test_every_metric_a_curve_can_hold_declares_its_range():
    numeric = [
        m
        for m, (kind, _) in METRICS.items()
        if pa.types.is_integer(kind) or pa.types.is_floating(kind)
    ]
    for metric in (*numeric, *ACCURACIES):
        assert metric in RANGES, f"{metric} declares no range"
    assert RANGES["test_error"] == (0.0, 1.0) and RANGES["test_accuracy"] == (0.0, 1.0)
    assert RANGES["test_mse"] == (0.0, np.inf) and RANGES["param_norm"] == (0.0, np.inf)


def _table(spec, rows):
    records = []
    for t, per_eval in zip(spec.trials, rows, strict=True):
        for step, (train_error, test_error) in enumerate(per_eval, start=1):
            records.append(
                {
                    "trial_id": trial_id(t),
                    "status": "ok",
                    "step": step,
                    "epoch": step,
                    "seed": t.seed,
                    "model_width": t.model.width,
                    "train_error": train_error,
                    "test_error": test_error,
                }
            )
    return pa.Table.from_pylist(records)


def test_final_best_and_epoch_wise_selections():
    spec = parse_spec(
        {
            "name": "c",
            "data": {"name": "mnist1d", "n_train": 200},
            "model": {"name": "mlp", "width": 2},
            "grid": {"model.width": [2, 8], "seed": [0, 1]},
        }
    )
    # per trial, (train_error, test_error) at epochs 1, 2, 3
    rows = [
        [(0.5, 0.6), (0.3, 0.5), (0.2, 0.55)],
        [(0.5, 0.6), (0.3, 0.4), (0.2, 0.45)],
        [(0.4, 0.5), (0.0, 0.3), (0.0, 0.35)],
        [(0.4, 0.5), (0.0, 0.3), (0.0, 0.25)],
    ]
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
    spec = parse_spec(
        {
            "name": "c",
            "data": {"name": "mnist1d", "n_train": 200},
            "model": {"name": "mlp", "width": 2},
            "grid": {"model.width": [2, 8]},
        }
    )
    table = _table(spec, [[(0.1, 0.2)], [(0.1, 0.2)]])
    status = table["status"].to_pylist()
    status[1] = "diverged"
    table = table.set_column(table.column_names.index("status"), "status", pa.array(status))
    foreign = _table(parse_spec({**spec.mapping, "seed": 7}), [[(0.9, 0.9)], [(0.9, 0.9)]])
    curves, left_out = sweep_curves(pa.concat_tables([table, foreign]), spec)
    assert left_out == 1
    points = curves[0].points.to_pylist()
    assert {r["x"] for r in points} == {2} and all(r["mean"] != 0.9 for r in points)


def test_figures_are_returned_to_the_caller_and_pyplot_never_holds_them():
    from matplotlib import _pylab_helpers
    from matplotlib.figure import Figure

    from dd.analysis.curves.epoch_wise import plot_heatmap
    from dd.analysis.plots import plot_curves

    spec = parse_spec(
        {
            "name": "c",
            "data": {"name": "mnist1d", "n_train": 200},
            "model": {"name": "mlp", "width": 2},
            "grid": {"model.width": [2, 8], "seed": [0, 1]},
        }
    )
    rows = [
        [(0.5, 0.6), (0.2, 0.55)],
        [(0.5, 0.6), (0.2, 0.45)],
        [(0.4, 0.5), (0.0, 0.35)],
        [(0.4, 0.5), (0.0, 0.25)],
    ]
    curves, _ = sweep_curves(_table(spec, rows), spec)
    managed = _pylab_helpers.Gcf.get_num_fig_managers()
    figures = [plot_curves(c, spec) for c in curves]
    figures.append(plot_heatmap(next(c for c in curves if c.kind == "epoch_wise"), spec))
    assert all(isinstance(f, Figure) and f.axes for f in figures)
    assert _pylab_helpers.Gcf.get_num_fig_managers() == managed, "no figure left open in pyplot"


# ---------------------------------------------------------------- effective model complexity

EMC_SPEC = {
    "name": "emc",
    "data": {"name": "mnist1d", "n_train": 100},
    "model": {"name": "mlp", "width": 4},
    "train": {"batch_size": 50},
    "grid": {"model.width": [4, 16], "data.n_train": [100, 200, 400], "seed": [0, 1]},
}
# (width, n_train) -> per seed, (train_error at epoch 1, train_error at epoch 2)
TRAIN_ERRORS = {
    (4, 100): [(0.2, 0.005), (0.3, 0.0)],
    (4, 200): [(0.3, 0.05), (0.3, 0.05)],
    (4, 400): [(0.4, 0.2), (0.4, 0.2)],
    (16, 100): [(0.5, 0.0), (0.5, 0.0)],
    (16, 200): [(0.5, 0.0), (0.5, 0.02)],
    (16, 400): [(0.5, 0.0), (0.5, 0.0)],
}
TEST_ERRORS = {
    (4, 100): 0.5,
    (4, 200): 0.6,
    (4, 400): 0.4,
    (16, 100): 0.45,
    (16, 200): 0.35,
    (16, 400): 0.3,
}


def _emc_rows(spec) -> pa.Table:
    records = []
    for t in spec.trials:
        key = (t.model.width, t.data.n_train)
        for epoch, train_error in enumerate(TRAIN_ERRORS[key][t.seed], start=1):
            records.append(
                {
                    "trial_id": trial_id(t),
                    "status": "ok",
                    "step": epoch,
                    "epoch": epoch,
                    "seed": t.seed,
                    "model_width": t.model.width,
                    "data_n_train": t.data.n_train,
                    "train_error": train_error,
                    "test_error": TEST_ERRORS[key],
                }
            )
    return pa.Table.from_pylist(records)


def test_a_seed_stored_at_a_few_sizes_is_left_out_of_the_emc_range():
    """Seed 2, added at n_train 100 and 200 only, fits both: read off those two its EMC would
    be 200, below the 400 every whole curve reaches; it counts in the mean, not the range."""
    spec = parse_spec(EMC_SPEC)
    rows = _emc_rows(spec).to_pylist()
    for n in (100, 200):
        rows += [
            {**r, "seed": 2, "trial_id": r["trial_id"] + "-s2", "train_error": 0.0}
            for r in rows
            if (r["model_width"], r["data_n_train"], r["seed"]) == (16, n, 0)
        ]
    emc = emc_curves(pa.Table.from_pylist(rows), spec)
    got = {(r["model_width"], r["epoch"]): r for r in emc.table.to_pylist()}
    assert (got[16, 2]["emc"], got[16, 2]["emc_low"], got[16, 2]["emc_high"]) == (400, 400, 400)
    assert (got[16, 2]["n_seeds"], got[16, 2]["curve_seeds"]) == (3, 2)
    assert (got[4, 2]["n_seeds"], got[4, 2]["curve_seeds"]) == (2, 2)


def test_emc_value_is_the_largest_size_still_fit():
    ns = np.array([100, 200, 400, 800])
    assert emc_value(ns, np.array([0.0, 0.005, 0.2, 0.3]), 0.01) == 200
    assert emc_value(ns, np.array([0.0, 0.2, 0.0, 0.3]), 0.01) == 400, "largest, as Nakkiran"
    assert emc_value(ns, np.array([0.1, 0.2, 0.2, np.nan]), 0.01) is None


def test_emc_per_width_and_epoch_with_the_seeds_range():
    spec = parse_spec(EMC_SPEC)
    emc = emc_curves(_emc_rows(spec), spec)
    assert emc.axis == "data.n_train" and emc.series == ("model.width",)
    assert (emc.metric, emc.tol) == ("train_error", 0.01)
    got = {(r["model_width"], r["epoch"]): r for r in emc.table.to_pylist()}
    assert set(got) == {(4, 1), (4, 2), (16, 1), (16, 2)}
    assert (got[4, 2]["emc"], got[4, 2]["emc_low"], got[4, 2]["emc_high"]) == (100, 100, 100)
    assert not got[4, 2]["censored"]
    # the mean at n = 200 is 0.01, not below the tolerance, but n = 400 is fit: EMC 400
    assert got[16, 2]["emc"] == 400 and got[16, 2]["censored"]
    assert got[16, 2]["n_seeds"] == 2
    assert got[16, 1]["emc"] is None and got[16, 1]["emc_high"] is None
    grid = {(g["model_width"], g["epoch"], g["n_train"]): g["mean"] for g in emc.grid.to_pylist()}
    assert np.isclose(grid[16, 2, 200], 0.01) and np.isclose(grid[4, 1, 100], 0.25)
    final = {r["model_width"]: r["emc"] for r in final_emc(emc).to_pylist()}
    assert final == {4: 100, 16: 400}


def test_emc_tolerance_is_a_validated_curves_field():
    spec = parse_spec({**EMC_SPEC, "curves": {"emc_tol": 0.1}})
    emc = emc_curves(_emc_rows(spec), spec)
    got = {(r["model_width"], r["epoch"]): r["emc"] for r in emc.table.to_pylist()}
    assert got[4, 2] == 200 and emc.tol == 0.1
    for bad, message in ((0, "must be > 0"), (-0.5, "must be > 0"), ("x", "must be a number")):
        with pytest.raises(SpecError, match=message) as e:
            parse_spec({**EMC_SPEC, "curves": {"emc_tol": bad}})
        assert e.value.path == "curves.emc_tol"


def test_a_sweep_without_a_size_axis_has_no_emc():
    spec = parse_spec({**EMC_SPEC, "grid": {"model.width": [4, 16], "seed": [0, 1]}})
    rows = _emc_rows(parse_spec(EMC_SPEC)).filter(
        pa.compute.equal(pa.compute.field("data_n_train"), 100)
    )
    assert emc_curves(rows, spec) is None


def test_sample_wise_landmark_is_the_emc_and_the_peak_lies_beyond_the_dip():
    spec = parse_spec(EMC_SPEC)
    curves, _ = sweep_curves(_emc_rows(spec), spec)
    sample = next(c for c in curves if c.kind == "sample_wise")
    marks = {m["model_width"]: m for m in sample.landmarks.to_pylist()}
    assert marks[16]["threshold_x"] == 400, "the largest n_train fit, not the smallest"
    assert marks[4]["threshold_x"] == 100
    assert marks[4]["test_error_peak_x"] == 200
    ns = np.array([10, 20, 50, 100, 200, 400])
    test = np.array([0.9, 0.5, 0.4, 0.45, 0.6, 0.3])  # the small-data arm is highest
    assert ns[sample_peak_index(ns, test, emc=100)] == 200
    assert ns[sample_peak_index(ns, test, emc=None)] == 200


def test_emc_crossings_of_the_model_wise_curves():
    spec = parse_spec(EMC_SPEC)
    rows = _emc_rows(spec)
    curves, _ = sweep_curves(rows, spec)
    model_wise = next(c for c in curves if c.kind == "model_wise")
    emc = emc_curves(rows, spec)
    crossings = {
        c["n_train"]: c for c in emc_crossings(emc, model_wise, train_sizes(rows, emc.axis))
    }
    assert {n: c["emc_cross_x"] for n, c in crossings.items()} == {100: 4, 200: 16, 400: 16}
    assert crossings[100]["threshold_x"] == 4 and crossings[100]["x"] == "model.width"
    assert crossings[200]["threshold_x"] is None, "mean train error 0.01 at width 16"
    assert "test_error_peak_x" in crossings[400], "the model-wise landmarks ride along"
    assert crossings[400]["test_error_peak_x"] is None, "two widths: a peak would be an edge"
    assert emc_crossings(emc, next(c for c in curves if c.kind == "epoch_wise"), {}) == []


@pytest.mark.slow
def test_write_curves_writes_the_emc_table_figure_and_lines(tmp_path):
    spec = parse_spec(EMC_SPEC)
    store = SweepStore(tmp_path, spec.name)
    aggregate = write_curves(store, spec, _emc_rows(spec))
    table = pq.read_table(tmp_path / "emc" / "curves" / "emc.parquet")
    assert len(table) == 4 and {"emc", "emc_low", "emc_high", "censored"} <= set(table.column_names)
    assert (tmp_path / "emc" / "curves" / "emc_grid.parquet").exists()
    assert (tmp_path / "emc" / "figures" / "emc.png").stat().st_size > 10_000
    lines = describe(aggregate)
    assert any(
        line.startswith("sample_wise model_width=16: EMC at data.n_train=400") for line in lines
    ), lines
    assert "  model_width=16 at epoch 2: >= 400 [400, 400]" in lines
    assert any(
        line.startswith("  EMC reaches n_train=200 at model.width=16; model-wise threshold none")
        for line in lines
    ), lines
    assert any(
        line.startswith(
            "  EMC reaches n_train=100 at model.width=4; model-wise threshold 4 (all 2 seeds at 4)"
        )
        for line in lines
    ), lines


def test_modular_sweeps_get_model_epoch_and_grokking_curves():
    spec = parse_spec(
        {
            "name": "g",
            "data": {"name": "modular", "p": 7},
            "model": {"name": "mlp", "width": 8, "depth": 1},
            "train": {"batch_size": "full", "epochs": 10},
            "grid": {"model.width": [8, 16]},
        }
    )
    assert curve_kinds(spec) == [
        ("model_wise", "model.width"),
        ("model_wise_best", "model.width"),
        ("epoch_wise", "epoch"),
        ("grokking", "step"),
    ]


def test_emc_of_a_modular_sweep_over_the_training_fraction_counts_pairs():
    spec = parse_spec(
        {
            "name": "g",
            "data": {"name": "modular", "p": 7},
            "model": {"name": "mlp", "width": 8, "depth": 1},
            "train": {"batch_size": "full", "epochs": 10},
            "grid": {"model.width": [8, 16], "data.train_fraction": [0.3, 0.6]},
        }
    )
    fit = {(8, 0.3): 0.0, (8, 0.6): 0.2, (16, 0.3): 0.0, (16, 0.6): 0.0}
    rows = pa.Table.from_pylist(
        [
            {
                "trial_id": trial_id(t),
                "status": "ok",
                "step": 10,
                "epoch": 10,
                "seed": 0,
                "model_width": t.model.width,
                "data_train_fraction": t.data.train_fraction,
                "data_n_train": t.data.n_train,
                "train_error": fit[t.model.width, t.data.train_fraction],
                "test_error": 0.5,
            }
            for t in spec.trials
        ]
    )
    emc = emc_curves(rows, spec)
    assert emc.axis == "data.train_fraction"
    assert {r["model_width"]: r["emc"] for r in emc.table.to_pylist()} == {8: 15, 16: 29}
    curves, _ = sweep_curves(rows, spec)
    model_wise = next(c for c in curves if c.kind == "model_wise")
    crossings = emc_crossings(emc, model_wise, train_sizes(rows, emc.axis))
    assert {c["n_train"]: c["emc_cross_x"] for c in crossings} == {15: 8, 29: 16}


def test_model_wise_best_of_a_regression_sweep_is_the_best_test_mse(tmp_path):
    """model_wise_best picks each trial's lowest test MSE where the task is regression (its
    test_error is null): the curve is the per-trial minimum averaged over seeds, and equals
    the ``trials`` view's ``best_test_mse``."""
    from dd.analysis.query import run_query

    spec = parse_spec(
        {
            "name": "reg",
            "data": {"name": "gaussian", "n_train": 50},
            "model": {"name": "mlp", "width": 4},
            "train": {"epochs": 3, "eval_points": 3, "batch_size": 25, "objective": "mse"},
            "grid": {"model.width": [4, 16], "seed": [0, 1]},
        }
    )
    test_mse = {  # per trial, at epochs 1, 2, 3: the best is never the first
        (4, 0): [1.5, 0.9, 1.1],
        (4, 1): [1.6, 1.2, 0.8],
        (16, 0): [2.0, 0.7, 0.75],
        (16, 1): [2.1, 1.0, 0.95],
    }
    records = [
        {
            "sweep": "reg",
            "trial_id": trial_id(t),
            "status": "ok",
            "step": step,
            "epoch": step,
            "seed": t.seed,
            "model_width": t.model.width,
            "train_mse": 0.5 / step,
            "test_mse": value,
            "train_error": None,
            "test_error": None,
        }
        for t in spec.trials
        for step, value in enumerate(test_mse[(t.model.width, t.seed)], start=1)
    ]
    table = pa.Table.from_pylist(records)
    curves, _ = sweep_curves(table, spec)
    best = next(c for c in curves if c.kind == "model_wise_best")
    got = {r["x"]: r["mean"] for r in best.points.to_pylist() if r["metric"] == "test_mse"}
    assert np.isclose(got[4], (0.9 + 0.8) / 2) and np.isclose(got[16], (0.7 + 0.95) / 2), got
    store = SweepStore(tmp_path, "reg")
    store.write_spec(spec.mapping)
    store.write_pack("p", table)
    _, view = run_query(
        "SELECT model_width, avg(best_test_mse) FROM trials GROUP BY 1 ORDER BY 1", tmp_path
    )
    assert np.allclose([v for _, v in view], [got[4], got[16]]), view
