"""The measures curve kind (dd.analysis.curves.measures) on fabricated rows whose answer is
known: per series, each requested scalar measure's final value and its largest value with the
step where it was reached, over seeds; it applies only where a spec asks for a scalar measure;
a report of such a sweep holds its sections."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dd.analysis.curves import measures
from dd.analysis.curves.registry import applicable
from dd.analysis.curves.tiny import MEASURED, MODULAR, OMNIGROK
from dd.analysis.report import write_report
from dd.plan.sweep import parse_spec
from dd.spec.ids import trial_id
from dd.store.schema import column_name
from dd.store.sweep import SweepStore
from helpers import store_trials

STEPS = (10, 100, 1000)
SPEC = {**MEASURED, "grid": {**MEASURED["grid"], "seed": [0, 1, 2]}}
ORTHO = column_name("train.orthogonal_grad")


def _values(trial) -> list[dict]:
    """softmax_collapse rises to 0.5 + 0.1 seed at step 100 then falls to 0.2 without the
    perpendicular gradient; with it, it stays 0 until 0.1 * seed at the last step.
    grad_weight_cosine is -0.5 throughout (its last evaluation missing for seed 2)."""
    ortho, seed = trial.train.orthogonal_grad, trial.seed
    rows = []
    for step in STEPS:
        if ortho:
            collapse = 0.1 * seed if step == STEPS[-1] else 0.0
        else:
            collapse = {10: 0.1, 100: 0.5 + 0.1 * seed, 1000: 0.2}[step]
        cosine = None if seed == 2 and step == STEPS[-1] else -0.5
        rows.append(
            {
                "step": step,
                "epoch": step,
                "softmax_collapse": collapse,
                "grad_weight_cosine": cosine,
                "train_error": 0.0,
                "test_error": 0.5,
            }
        )
    return rows


def _rows(spec) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "trial_id": trial_id(t),
                ORTHO: t.train.orthogonal_grad,
                "seed": t.seed,
                "status": "ok",
                **row,
            }
            for t in spec.trials
            for row in _values(t)
        ]
    )


@pytest.fixture(scope="module")
def spec():
    return parse_spec(SPEC)


def test_the_kind_applies_only_where_a_spec_asks_for_a_scalar_measure(spec):
    assert measures.KIND in applicable(spec)
    assert measures.columns(spec) == ("softmax_collapse", "grad_weight_cosine")
    for other in (
        {**SPEC, "train": {**SPEC["train"], "measures": ""}},  # nothing asked
        OMNIGROK,  # a vector measure only
        MODULAR,  # the data kind's own progress measures: the grokking kinds draw them
    ):
        unmeasured = parse_spec(other)
        assert measures.KIND not in applicable(unmeasured)
        assert "scalar measure" in measures.KIND.why_not(unmeasured)


def test_final_and_largest_values_and_their_step_per_series(spec):
    result = measures.compute(_rows(spec), spec, {})
    table = {(r["measure"], r[ORTHO]): r for r in result.table.to_pylist()}
    plain = table[("softmax_collapse", False)]
    assert plain["n_seeds"] == 3
    assert plain["final"] == pytest.approx(0.2)
    assert plain["largest"] == pytest.approx(0.6)  # the mean of 0.5, 0.6, 0.7
    assert plain["largest_ci_low"] < 0.6 < plain["largest_ci_high"] <= 1.0
    assert (plain["largest_step"], plain["largest_step_low"], plain["largest_step_high"]) == (
        100,
        100,
        100,
    )
    ortho = table[("softmax_collapse", True)]
    assert ortho["final"] == pytest.approx(0.1) and ortho["largest"] == pytest.approx(0.1)
    assert ortho["final_ci_low"] == 0.0  # the interval is clipped to the measure's range
    assert ortho["largest_step_low"] == 10 and ortho["largest_step_high"] == 1000  # seed 0: 0
    cosine = table[("grad_weight_cosine", False)]
    assert cosine["final"] == pytest.approx(-0.5) and cosine["n_seeds"] == 3  # seed 2's last
    assert cosine["final_ci_low"] == pytest.approx(-0.5)  # evaluation before the missing one
    lines = measures.summary(result)
    assert any(
        line.startswith("softmax_collapse: largest 0.6 (95% ")
        and "at step 100 in train_orthogonal_grad=False; final 0.2" in line
        for line in lines
    ), lines
    assert lines[2] == "grad_weight_cosine: -0.5 at every evaluation in train_orthogonal_grad=False"
    assert cosine["constant"] and not plain["constant"], (
        "a measure that never moves has no step of its largest value: the line says so"
    )


def test_one_seed_says_so():
    one = parse_spec({**SPEC, "grid": {**SPEC["grid"], "seed": [0]}})
    result = measures.compute(_rows(one), one, {})
    line = next(x for x in measures.summary(result) if "orthogonal_grad=False" in x)
    assert "largest 0.5 (one seed) at step 100" in line


@pytest.mark.slow
def test_a_report_of_such_a_sweep_holds_the_sections(tmp_path):
    store_trials(tmp_path, SPEC, rows=_values)
    path, _ = write_report(SweepStore(tmp_path, SPEC["name"]))
    page = path.read_text()
    assert "Measure softmax_collapse: final and largest value per series" in page
    assert "Measure grad_weight_cosine: final and largest value per series" in page
    assert "softmax_collapse: largest 0.6 (95% " in page
