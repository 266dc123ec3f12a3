"""Omnigrok's LU (dd.analysis.curves.lu) on fabricated rows whose answer is known: the weight
norm is computed from the last evaluation's layer norms, the U's minimum is located, an edge
minimum is no U, and the steps to the accuracy level are bracketed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dd.analysis.curves import lu
from dd.analysis.curves.registry import applicable
from dd.analysis.curves.tiny import OMNIGROK
from dd.plan.sweep import parse_spec
from dd.spec.ids import trial_id
from dd.store.schema import column_name

SCALES = [0.5, 1.0, 2.0, 4.0, 8.0]
SPEC = {**OMNIGROK, "grid": {"model.init_scale": SCALES, "seed": [0, 1, 2]}}


def _rows(spec, test_loss) -> pa.Table:
    """Two evaluations per trial (steps 10 and 100): at the last, layers of norms 3s and 4s
    (total 5s), the training set fit, and ``test_loss(s)`` plus seed noise of 0.01; train
    accuracy reaches 0.9 at step 10 for every scale, test accuracy at step 100 only for scales
    above 1."""
    records = []
    for t in spec.trials:
        s = t.model.init_scale
        for step, norms in ((10, [1.0, 1.0]), (100, [3 * s, 4 * s])):
            records.append(
                {
                    "trial_id": trial_id(t),
                    column_name("model.init_scale"): s,
                    "seed": t.seed,
                    "status": "ok",
                    "step": step,
                    "layer_norms": norms,
                    "train_loss": 1e-3,
                    "test_loss": test_loss(s) + 0.01 * t.seed,
                    "train_error": 0.05 if step == 10 else 0.0,
                    "test_error": 0.05 if step == 100 and s > 1 else 0.5,
                }
            )
    return pa.Table.from_pylist(records)


@pytest.fixture(scope="module")
def spec():
    return parse_spec(SPEC)


def test_the_kind_applies_to_an_init_scale_sweep_measuring_layer_norms(spec):
    assert lu.KIND in applicable(spec)
    unmeasured = parse_spec({**SPEC, "train": {**SPEC["train"], "measures": ""}})
    assert lu.KIND not in applicable(unmeasured)
    assert "layer_norms" in lu.KIND.why_not(unmeasured)


def test_the_weight_norm_is_the_norm_of_the_last_layer_norms(spec):
    result = lu.compute(_rows(spec, lambda s: 1.0), spec, {})
    trials = result.trials.to_pydict()
    scales = trials[column_name("model.init_scale")]
    np.testing.assert_allclose(trials["weight_norm"], [5 * s for s in scales])
    points = result.points.to_pydict()
    np.testing.assert_allclose(points["weight_norm"], [5 * s for s in SCALES])
    assert points["n_seeds"] == [3] * len(SCALES)


def test_the_u_minimum_is_located_at_the_goldilocks_norm(spec):
    result = lu.compute(_rows(spec, lambda s: (np.log2(s) - 1) ** 2 + 0.1), spec, {})
    (best,) = result.goldilocks.to_pylist()
    assert best["init_scale"] == 2.0 and best["weight_norm"] == pytest.approx(10.0)
    assert best["value"] == pytest.approx(0.11)  # 0.1 + the seeds' mean noise 0.01
    assert best["u"] == "yes"
    lines = lu.summary(result)
    assert "lowest at init_scale=2" in lines[0] and "a U: yes" in lines[0]
    assert "training set fit" in lines[1] and "init_scale=8 (norm 40)" in lines[1]


def test_a_minimum_at_the_edge_is_no_u(spec):
    result = lu.compute(_rows(spec, lambda s: s), spec, {})
    (best,) = result.goldilocks.to_pylist()
    assert best["init_scale"] == 0.5 and best["u"] == "no"


def test_the_steps_to_the_accuracy_level_are_bracketed(spec):
    trials = lu.compute(_rows(spec, lambda s: 1.0), spec, {}).trials.to_pylist()
    for t in trials:
        assert (t["t_train_after"], t["t_train"]) == (0.0, 10.0)
        if t[column_name("model.init_scale")] > 1:
            assert (t["t_test_after"], t["t_test"]) == (10.0, 100.0)
        else:
            assert np.isnan(t["t_test"])
