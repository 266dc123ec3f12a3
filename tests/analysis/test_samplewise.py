"""Sample-wise double descent of min-norm regression: the theory along n, and the EMC at n = p."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dd.analysis.aggregate import sweep_curves
from dd.analysis.curves.emc_values import emc_curves
from dd.analysis.theory import gaussian_raw_features_risk
from dd.engine.closed_form import fit_pack
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from dd.spec.ids import trial_id
from dd.store.schema import pack_table

P = 20
SIZES = [4, 8, 12, 16, 19, 20, 21, 24, 40, 80]
SMALL = {
    "name": "samplewise_small",
    "data": {
        "name": "gaussian",
        "dim": 40,
        "n_train": P,
        "n_test": 100,
        "beta_norm2": 1.0,
        "noise_var": 0.25,
    },
    "model": {"name": "raw_features", "n_features": P},
    "fit": {"p_eff_inputs": 10},  # the exact risk needs no large test set
    "grid": {"data.n_train": SIZES, "seed": {"range": [0, 200]}},
    "curves": {"threshold_metric": "train_mse", "threshold_tol": 1e-6},
}


def _rows(spec) -> pa.Table:
    tables = []
    for pack in make_packs(list(spec.trials), spec.resources):
        rows = fit_pack(pack.padded_trials(), pack.n_rows)[: len(pack.trials)]  # one program
        tables.append(
            pack_table(
                sweep=spec.name,
                pack_id=pack.id,
                trial_ids=[trial_id(t) for t in pack.trials],
                trials=list(pack.trials),
                rows=[[r] for r in rows],
                wall_time_s=0.0,
                jax_version="test",
            )
        )
    return pa.concat_tables(tables)


@pytest.mark.slow
def test_sample_wise_risk_follows_the_theory_and_peaks_at_the_emc():
    """A small samplewise_linear.yaml: the mean exact risk over 200 seeds is within 10% of the
    formula wherever |n - p| >= p/5; the model fits every n <= p exactly, so the EMC and the
    sample-wise landmark are n = p, and the test peak lies within one sample of it."""
    spec = parse_spec(SMALL)
    rows = _rows(spec)
    (sample,) = [c for c in sweep_curves(rows, spec)[0] if c.kind == "sample_wise"]
    means = {(r["metric"], r["x"]): r["mean"] for r in sample.points.to_pylist()}
    far = [n for n in SIZES if abs(n - P) >= P / 5]
    for n in far:
        theory = gaussian_raw_features_risk(P, n, 40, 1.0, 0.25)
        assert abs(means["population_risk", n] / theory - 1) < 0.10, (n, theory)
    (mark,) = sample.landmarks.to_pylist()
    assert mark["threshold_x"] == P
    assert abs(mark["population_risk_peak_x"] - P) <= 1
    assert (
        means["population_risk", 80] < means["population_risk", 24] < means["population_risk", 21]
    ), "more data helps past the peak"
    assert means["population_risk", 16] > means["population_risk", 8], "and hurts before it"
    (emc,) = emc_curves(rows, spec).table.to_pylist()
    assert emc["emc"] == P and not emc["censored"]
    assert np.all([means["train_mse", n] < 1e-6 for n in SIZES if n <= P])
