"""Where a refinement target lies in rows with known answers, and the values that narrow it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dd.analysis.refine import locate
from dd.plan.refine import Refine
from dd.plan.sweep import parse_spec

MLP = {
    "name": "r",
    "data": {"name": "mnist1d", "n_train": 200, "n_test": 100},
    "model": {"name": "mlp", "depth": 2, "width": 2},
    "train": {"epochs": 2, "eval_points": 2},
    "grid": {"model.width": [2, 8, 32, 128], "seed": [0, 1]},
}


def rows_of(points: dict, metric: str = "train_error", x: str = "model_width", step: int = 1):
    """One final row per (x, seed): {x: [value per seed]}, test_error beside it."""
    records = []
    for xv, values in points.items():
        for seed, value in enumerate(values):
            records.append(
                {
                    "trial_id": f"{xv}-{seed}-{step}",
                    "step": step,
                    "seed": seed,
                    x: xv,
                    metric: value,
                    "test_error": value,
                }
            )
    return pa.Table.from_pylist(records)


def test_threshold_bracket_is_bisected_and_rounded_on_an_integer_axis():
    spec = parse_spec(MLP)
    rows = rows_of({2: [0.5, 0.5], 8: [0.3, 0.2], 32: [0.015, 0.0], 128: [0.0, 0.0]})
    (loc,) = locate(rows, spec, Refine(axis="model.width"))
    assert (loc.lo, loc.hi, loc.at, loc.seeds) == (8, 32, 32, 2), "mean 0.0075 at 32 is under 0.01"
    assert loc.new == (20,) and loc.why is None
    (tight,) = locate(rows_of({7: [0.5], 8: [0.0]}), spec, Refine(axis="model.width"))
    assert (tight.lo, tight.hi, tight.new, tight.why) == (7, 8, (), "resolved to 1")
    (coarse,) = locate(rows, spec, Refine(axis="model.width", resolution=30))
    assert coarse.new == () and coarse.why == "resolved to 30"


def test_a_threshold_not_reached_or_at_the_first_x_adds_nothing_and_says_why():
    spec = parse_spec(MLP)
    (none,) = locate(rows_of({2: [0.5], 8: [0.3]}), spec, Refine(axis="model.width"))
    assert none.new == () and none.why.startswith("not reached")
    (first,) = locate(rows_of({2: [0.0], 8: [0.0]}), spec, Refine(axis="model.width"))
    assert first.new == () and "smallest" in first.why


def test_a_log_scale_bisects_at_the_geometric_mean():
    mapping = {**MLP, "grid": {"train.weight_decay": [0.01, 1.0], "seed": [0]}}
    spec = parse_spec(mapping)
    rows = rows_of({0.01: [0.5], 1.0: [0.0]}, x="train_weight_decay")
    target = Refine(axis="train.weight_decay", scale="log", resolution=1.2)
    (loc,) = locate(rows, spec, target)
    assert loc.new == (pytest.approx(0.1),)


def test_a_peak_gets_a_value_on_each_side():
    spec = parse_spec(MLP)
    rows = rows_of(
        {2: [0.5], 4: [0.3], 16: [0.0], 32: [0.0], 64: [0.0], 128: [0.0]}, metric="train_error"
    )
    test = {2: 0.5, 4: 0.3, 16: 0.45, 32: 0.35, 64: 0.25, 128: 0.2}
    rows = rows.set_column(
        rows.column_names.index("test_error"),
        "test_error",
        pa.array([test[x] for x in rows["model_width"].to_pylist()]),
    )
    (loc,) = locate(rows, spec, Refine(axis="model.width", find="peak"))
    assert (loc.lo, loc.at, loc.hi) == (4, 16, 32)
    assert loc.new == (10, 24)


def test_the_boundary_is_where_most_seeds_generalise_at_some_evaluation():
    grok = {
        "name": "g",
        "data": {"name": "modular", "p": 31, "op": "x+y", "train_fraction": 0.5},
        "model": {"name": "mlp", "width": 16, "depth": 1},
        "train": {"epochs": 2, "batch_size": "full"},
        "grid": {"train.weight_decay": [0.0, 0.4, 0.8, 1.6], "seed": [0, 1]},
    }
    spec = parse_spec(grok)
    # test error per (wd, seed) at two evaluations: generalised when any is <= 0.01
    early = rows_of(
        {0.0: [0.9, 0.9], 0.4: [0.9, 0.9], 0.8: [0.5, 0.0], 1.6: [0.0, 0.0]},
        metric="train_error",
        x="train_weight_decay",
        step=1,
    )
    late = rows_of(
        {0.0: [0.9, 0.9], 0.4: [0.005, 0.9], 0.8: [0.0, 0.3], 1.6: [0.2, 0.0]},
        metric="train_error",
        x="train_weight_decay",
        step=2,
    )

    def ids(t):  # one trial per (wd, seed) across both evaluations
        return t.set_column(
            0, "trial_id", pa.array([i.rsplit("-", 1)[0] for i in t["trial_id"].to_pylist()])
        )

    rows = pa.concat_tables([ids(early), ids(late)])
    (loc,) = locate(rows, spec, Refine(axis="train.weight_decay", find="boundary", resolution=0.1))
    assert (loc.lo, loc.hi) == (0.4, 0.8), "at 0.4 one seed of two: not most"
    assert loc.new == (pytest.approx(0.6),)


def test_curves_and_figures_mark_the_values_a_refinement_added(tmp_path):
    """The stored ``refine.json`` says which widths the rounds added: the model-wise curve set
    carries those drawn (not 200, never trained) and its figure marks them; a spec without
    ``refine:`` marks nothing (issue 30: the figure marks the points each round added)."""
    from dd.analysis.aggregate import sweep_curves
    from dd.analysis.plots import plot_curves
    from dd.plan.refine import stored_additions, write_state
    from dd.store.sweep import SweepStore
    from tests.helpers import width_rows

    mapping = {
        **MLP,
        "grid": {"model.width": [2, 8, 5, 6], "seed": [0, 1]},
        "refine": {"axis": "model.width", "find": "threshold"},
    }
    spec = parse_spec(mapping)
    test = {(w, s): 0.5 for w in (2, 5, 6, 8) for s in (0, 1)}
    rows = width_rows(spec, test, {2: 0.5, 5: 0.2, 6: 0.0, 8: 0.0})
    store = SweepStore(tmp_path, "r")
    store.dir.mkdir(parents=True)
    assert stored_additions(store) == {}
    write_state(store, {"base": "", "added": {"model.width": [5, 6, 200]}, "rounds": []})
    sets, _ = sweep_curves(rows, spec, stored_additions(store))
    model_wise = next(c for c in sets if c.kind == "model_wise")
    assert model_wise.added == (5.0, 6.0)
    labels = [line.get_label() for line in plot_curves(model_wise, spec).axes[0].get_lines()]
    assert "added by refinement" in labels
    plain = parse_spec({k: v for k, v in mapping.items() if k != "refine"})
    sets, _ = sweep_curves(rows, plain, stored_additions(store))
    assert next(c for c in sets if c.kind == "model_wise").added == ()
