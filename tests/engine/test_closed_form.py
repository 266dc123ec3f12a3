"""Closed-form fits: the theory, the Belkin shape, and packs that equal trials run alone."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from dd.analysis.theory import gaussian_raw_features_risk
from dd.datasets.base import Locations
from dd.engine import data as host_data
from dd.engine.closed_form import fit_pack
from dd.plan.packs import make_packs
from dd.plan.sweep import load_spec, parse_spec
from helpers import idx_split, write_idx_dataset

SWEEPS = Path(__file__).parents[2] / "sweeps"


@pytest.mark.slow
def test_a_trial_in_a_pack_equals_the_trial_alone():
    spec = parse_spec(
        {
            "name": "eq",
            "data": {"name": "digits", "n_train": 50},
            "model": {"name": "fourier_features", "n_features": 80, "bandwidth": 4.0},
            "grid": {
                "seed": [0, 1, 2],
                "data.n_train": [30, 60],
                "data.label_noise": [0.0, 0.2],
                "fit.ridge": [0.0, 1e-3],
            },
        }
    )
    (pack,) = make_packs(list(spec.trials), spec.resources)
    assert len(pack.trials) == 24, "seed, n_train, label noise and ridge share one pack"
    together = fit_pack(list(pack.trials))
    for i in (0, 5, 13, 23):
        alone = fit_pack([pack.trials[i]])[0]
        for metric, value in alone.items():
            np.testing.assert_allclose(
                together[i][metric], value, rtol=1e-9, atol=1e-12, err_msg=metric
            )


@pytest.mark.slow
def test_min_norm_interpolates_and_counts_its_effective_parameters():
    spec = parse_spec(
        {
            "name": "peff",
            "data": {"name": "gaussian", "dim": 40, "n_train": 20, "n_test": 200},
            "model": {"name": "raw_features", "n_features": 1},
            "grid": {"model.n_features": [5, 19, 30, 40]},
        }
    )
    rows = {
        t.model.n_features: r for t, r in zip(spec.trials, fit_pack(list(spec.trials)), strict=True)
    }
    for p, row in rows.items():
        assert row["p_eff_train"] == pytest.approx(min(p, 20)), "trace of the hat matrix = rank"
        assert row["n_params"] == p
    assert rows[5]["train_mse"] > 0.1
    assert rows[30]["train_mse"] < 1e-20 and rows[40]["train_mse"] < 1e-20
    ridge = fit_pack(list(parse_spec({**spec.mapping, "fit": {"ridge": 10.0}}).trials))
    assert all(
        r["p_eff_train"] < min(t.model.n_features, 20)
        for t, r in zip(spec.trials, ridge, strict=True)
    ), "ridge shrinks the effective parameters"


@pytest.mark.slow
def test_linear_theory_sweep_matches_the_formula():
    """On the shipped linear_theory.yaml, mean test MSE within 10% of the formula
    at every p with |p - n| >= n/5 (all its seeds)."""
    spec = load_spec(SWEEPS / "linear_theory.yaml")
    data = spec.trials[0].data
    n = data.n_train
    trials = [t for t in spec.trials if abs(t.model.n_features - n) >= n / 5]
    assert len({t.model.n_features for t in trials}) >= 20
    rows = []
    for pack in make_packs(trials, spec.resources):
        rows += fit_pack(list(pack.trials))
    ordered = [t for pack in make_packs(trials, spec.resources) for t in pack.trials]
    p = np.array([t.model.n_features for t in ordered])
    for metric in ("test_mse", "population_risk"):
        values = np.array([r[metric] for r in rows])
        for pv in np.unique(p):
            theory = gaussian_raw_features_risk(pv, n, data.dim, data.beta_norm2, data.noise_var)
            mean = values[p == pv].mean()
            assert abs(mean / theory - 1) < 0.10, (metric, pv, mean, theory)


def _shrunk(path: Path, n_train: int, features: list[int], seeds: int) -> list:
    """The shipped spec with a smaller n_train and grid: same data, model and fit."""
    mapping = copy.deepcopy(load_spec(path).mapping)
    mapping["data"]["n_train"] = n_train
    mapping["grid"] = {"model.n_features": features, "seed": {"range": [0, seeds]}}
    return list(parse_spec(mapping).trials)


@pytest.mark.slow
@pytest.mark.parametrize("sweep,n", [("rff_digits.yaml", 200), ("rff_mnist1d.yaml", 200)])
def test_belkin_double_descent_peaks_at_n_equals_n_train(sweep, n):
    """On shrunk versions of the shipped RFF sweeps: the test zero-one and squared
    losses and the coefficient norm peak within 10% of N = n, the train loss is 0 above it,
    and the test error at the largest N is below the peak."""
    features = [20, 50, 100, 150, 180, 200, 220, 260, 400, 800, 2000]
    trials = _shrunk(SWEEPS / sweep, n, features, seeds=3)
    rows = fit_pack_by_features(trials)
    mean = {
        m: np.array([np.mean([r[m] for r in rows[N]]) for N in features])
        for m in ("test_error", "test_mse", "coef_norm", "train_mse", "train_error")
    }
    N = np.array(features)
    for metric in ("test_error", "test_mse", "coef_norm"):
        peak = N[np.argmax(mean[metric])]
        assert 0.9 * n <= peak <= 1.1 * n, (metric, peak, mean[metric])
        assert mean[metric][-1] < mean[metric].max()
    assert np.all(mean["train_mse"][N >= 1.1 * n] < 1e-8)
    assert np.all(mean["train_error"][N >= n] == 0)
    assert np.all(mean["train_mse"][N <= 0.9 * n] > 1e-3), "no interpolation below n"


def fit_pack_by_features(trials) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for N in sorted({t.model.n_features for t in trials}):
        members = [t for t in trials if t.model.n_features == N]
        out[N] = fit_pack(members)
    return out


@pytest.mark.slow
def test_a_fit_reads_the_data_through_the_locations_it_is_given(tmp_path, monkeypatch):
    write_idx_dataset(
        tmp_path / "images" / "mnist",
        {"train": idx_split(30, side=28), "t10k": idx_split(7, side=28)},
    )
    monkeypatch.setattr(host_data, "_pools", {})  # nothing loaded in this process yet
    spec = parse_spec(
        {
            "name": "located",
            "data": {"name": "mnist", "n_train": 30, "n_test": 7},
            "model": {"name": "raw_features", "n_features": 20},
        }
    )
    (fit,) = fit_pack(list(spec.trials), None, Locations(data_dir=str(tmp_path / "images")))
    assert fit["test_error"] >= 0
