"""Every registered curve kind, run through the aggregator on hand-made rows: where it applies
it writes its tables and figures and tells its lines; where it does not it says why."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dd.analysis.aggregate import compute_kinds, current_rows, describe, write_curves
from dd.analysis.curves.base import Section
from dd.analysis.curves.measures import asked as asked_measures
from dd.analysis.curves.registry import check_curves, load as load_curve_kinds
from dd.analysis.curves.tiny import FITTED
from dd.models.measures import requested
from dd.plan.states import plan_of
from dd.plan.sweep import parse_spec
from dd.spec.ids import trial_id
from dd.store.schema import flatten_config
from dd.store.sweep import SweepStore

SEEDS_ONLY = {  # a closed-form sweep over seeds alone: no kind applies
    **FITTED,
    "name": "seeds_only",
    "grid": {"seed": [0, 1, 2]},
}


MEASURED = {  # what each model kind stores, so each figure has the panels of a real sweep
    True: ("train_mse", "test_mse", "coef_norm", "p_eff_test", "p_eff_train"),
    False: (
        "train_error",
        "test_error",
        "train_loss",
        "test_loss",
        "train_error_noisy",
        "noisy_true_acc",
        "train_error_clean",
    ),
}


def _rows(spec) -> pa.Table:
    """The measured metrics at random for each trial, at four epochs (trained) or one row
    (closed form); most trials fit their training set by the later epochs."""
    rng = np.random.default_rng(0)
    closed = spec.trials[0].model.SECTION == "fit"
    records = []
    for t in spec.trials:
        config = {k: v for k, v in flatten_config(t).items() if isinstance(v, (int, float, str))}
        for epoch in [None] if closed else [1, 2, 4, 8]:
            row = {
                **config,
                "trial_id": trial_id(t),
                "status": "ok",
                "pack_id": "p0",
                "wall_time_s": 1.0,
                "step": 0 if epoch is None else 10 * epoch,
                "epoch": epoch,
                "seed": t.seed,
            }
            for metric in MEASURED[closed]:
                row[metric] = float(rng.uniform(0, 0.3 if "train" in metric else 1.0))
            if not closed and "layer_norms" in requested(t):  # a list column: norms per layer
                row["layer_norms"] = rng.uniform(1, 10, 3).tolist()
            if not closed:  # scalar measures a spec asks for: in [0, 1], inside their ranges
                row |= {c: float(rng.uniform()) for c in asked_measures(t)}
            if rng.uniform() < (0.8 if (epoch or 8) >= 4 else 0.1):
                row["train_error"] = row["train_mse"] = 0.0
            records.append(row)
    return pa.Table.from_pylist(records)


@pytest.fixture(scope="module")
def aggregated(tmp_path_factory):
    """Each kind's own small sweep (``CurveKind.tiny``) as (spec, results root, aggregate),
    every distinct sweep aggregated once, by name."""
    root = tmp_path_factory.mktemp("kinds")
    out = {}

    def of(kind):
        assert kind.tiny is not None, f"curve kind {kind.name!r} supplies no tiny sweep"
        name = kind.tiny["name"]
        if name not in out:
            spec = parse_spec(kind.tiny)
            out[name] = spec, root, write_curves(SweepStore(root, name), spec, _rows(spec))
        return out[name]

    return of


@pytest.mark.parametrize("kind", load_curve_kinds(), ids=lambda k: k.name)
@pytest.mark.slow
def test_each_kind_writes_its_tables_figures_and_lines(kind, aggregated):
    spec, tmp_path, aggregate = aggregated(kind)
    assert kind.axis(spec) is not None and kind.why_not(spec) is None
    result = aggregate.results[kind.name]
    tables = kind.tables(result)
    figures = kind.figures(result, spec)
    assert tables or figures, "a kind writes something"
    for stem in tables:
        stored = pq.read_table(tmp_path / spec.name / "curves" / f"{stem}.parquet")
        assert stored.num_rows > 0, stem
    for name, figure in figures.items():
        assert figure.axes, name
        assert (tmp_path / spec.name / "figures" / name).stat().st_size > 1000
    lines = kind.summary(result)
    assert all(isinstance(line, str) for line in lines)
    assert set(lines) <= set(describe(aggregate))
    assert all(isinstance(s, Section) and s.heading for s in kind.sections(result))


@pytest.mark.parametrize("kind", load_curve_kinds(), ids=lambda k: k.name)
def test_a_kind_that_does_not_apply_says_so(kind):
    spec = parse_spec(SEEDS_ONLY)
    assert kind.axis(spec) is None
    assert kind.why_not(spec) == f"{kind.name}: does not apply to seeds_only; it needs {kind.needs}"
    rows, _ = current_rows(_rows(spec), plan_of(spec).trial_ids)
    assert kind.name not in compute_kinds(rows, spec)
    check_curves(spec.curves, list(spec.axes), spec.trials[0])  # nothing to check: no error


def test_the_registry_names_each_kind_once():
    names = [k.name for k in load_curve_kinds()]
    assert len(names) == len(set(names))
