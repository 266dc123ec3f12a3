"""Closed-form fits: min-norm (ridge >= 0) least squares on the features of a ``FeatureMap`` kind
(``dd.models.raw``, ``dd.models.fourier``, ``dd.models.relu``).

For a train feature matrix Phi (n x p) with thin SVD U S V^T, the fit is

    coef = V diag(s / (s^2 + ridge)) U^T Y,

with singular values below eps * max(n, p) * s_max dropped (the pseudo-inverse), so ridge 0
gives the minimum-l2-norm interpolator above the threshold p = n. Multiclass targets are
one-hot and squared losses are summed over outputs (Belkin et al. 2019).

Effective parameters (Curth et al. 2023): the fit is a linear smoother f(x0) = s(x0) . y with
s(x0) = phi(x0)^T V diag(s / (s^2 + ridge)) U^T, and p_eff(I0) = n / |I0| sum ||s(x0)||^2;
on the training inputs with ridge 0 it is rank(Phi) = min(n, p).

A pack's replicas (seeds, n_train, label noise, ridge) are fitted by one vmapped, jitted
program in float64, since the solve is ill-conditioned near the threshold.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from dd.datasets.base import Locations
from dd.engine.data import load_dataset
from dd.engine.device_data import DeviceData, prepare_inputs, to_device, training_rows
from dd.models.registry import kind_of, model_kind, program_trial
from dd.models.rng import scoped, trial_key
from dd.spec.config import Trial

TEST_CHUNK = 1024  # test rows evaluated per step; bounds memory at TEST_CHUNK x n_features


def _targets(y: jax.Array, n_classes: int) -> jax.Array:
    """One-hot targets for classification, a single column for regression."""
    if n_classes:
        return jax.nn.one_hot(y, n_classes, dtype=jnp.float64)
    return y[:, None].astype(jnp.float64)


@functools.partial(jax.jit, static_argnames=("model", "n_rows", "p_eff_inputs"))
def _fit_replicas(
    data: DeviceData, seeds, n_train, label_noise, ridge, n_features, *, model, n_rows, p_eff_inputs
):
    n_classes = data.n_classes
    x_test_CTD, y_test_CT, test_mask_CT = data.x_test_CTD, data.y_test_CT, data.mask_test_CT
    input_dim = math.prod(x_test_CTD.shape[2:])

    def flat(x):  # model-ready float64 inputs, one row per example
        return (
            prepare_inputs(x, data.x_mean_S, data.x_std_S)
            .reshape(x.shape[0], -1)
            .astype(jnp.float64)
        )

    features = model_kind(model)
    from_pool = (
        features.pool_params(model, flat(data.x_pool_PD)) if data.x_pool_PD is not None else {}
    )

    def fit_one(seed, n, noise, lam, p):
        key = trial_key(seed)
        rows = training_rows(key, data, n_rows, n, noise)
        params = features.params(key, model, input_dim) | from_pool
        mask_N = rows["mask"].astype(jnp.float64)
        # zeroed columns (past a replica's p) get zero coefficients, so only the train
        # matrix needs the column mask; test features are used as they are
        used_P = (jnp.arange(model.n_features) < p).astype(jnp.float64)
        phi_NP = features.featurize(model, params, flat(rows["x"])) * used_P * mask_N[:, None]
        y_NK = _targets(rows["y"], n_classes) * mask_N[:, None]
        u_NR, s_R, vt_RP = jnp.linalg.svd(phi_NP, full_matrices=False)
        cutoff = jnp.finfo(jnp.float64).eps * jnp.maximum(n, p) * s_R[0]
        d_R = jnp.where(s_R > cutoff, s_R / (s_R**2 + lam), 0.0)
        coef_PK = vt_RP.T @ (d_R[:, None] * (u_NR.T @ y_NK))
        n = n.astype(jnp.float64)

        pred_NK = phi_NP @ coef_PK
        out = {
            "train_mse": jnp.sum(mask_N[:, None] * (pred_NK - y_NK) ** 2) / n,
            "coef_norm": jnp.sqrt(jnp.sum(coef_PK**2)),
            "p_eff_train": jnp.sum((phi_NP @ vt_RP.T * d_R) ** 2),
        }
        if n_classes:
            wrong_N = jnp.argmax(pred_NK, -1) != rows["y"]
            out["train_error"] = jnp.sum(mask_N * wrong_N) / n

        def test_chunk(carry, chunk):
            x_TD, y_T, m_T = chunk
            phi_TP = features.featurize(model, params, flat(x_TD))
            err_TK = phi_TP @ coef_PK - _targets(y_T, n_classes)
            sums = {"sq": jnp.sum(m_T[:, None] * err_TK**2)}
            if n_classes:
                wrong_T = jnp.argmax(phi_TP @ coef_PK, -1) != y_T
                sums["wrong"] = jnp.sum(m_T * wrong_T)
            return jax.tree.map(jnp.add, carry, sums), None

        zero = {"sq": jnp.zeros(())} | ({"wrong": jnp.zeros(())} if n_classes else {})
        sums, _ = jax.lax.scan(test_chunk, zero, (x_test_CTD, y_test_CT, test_mask_CT))
        n_test = jnp.sum(test_mask_CT)
        out["test_mse"] = sums["sq"] / n_test
        if n_classes:
            out["test_error"] = sums["wrong"] / n_test

        x_eff = flat(x_test_CTD.reshape((-1,) + x_test_CTD.shape[2:])[:p_eff_inputs])
        smoother = features.featurize(model, params, x_eff) @ vt_RP.T * d_R
        out["p_eff_test"] = n / x_eff.shape[0] * jnp.sum(smoother**2)
        if data.beta_D is not None and features.population_risk is not None:
            out["population_risk"] = features.population_risk(
                model, coef_PK, data.beta_D, data.scale_D, data.noise_var
            )
        return out

    return jax.vmap(fit_one)(seeds, n_train, label_noise, ridge, n_features)


@scoped()
def fit_pack(
    trials: list[Trial], n_rows: int | None = None, locations: Locations | None = None
) -> list[dict[str, float]]:
    """Fit every trial of a pack (all share data pool, model kind and program width) at once.

    ``n_rows`` (default: the largest n_train) is the row count replicas are padded to;
    ``locations``: where the dataset's files are (the driver's settings, by the worker).
    Returns one dict of metrics per trial, in order.
    """
    first = trials[0]
    dataset = load_dataset(first.data, locations)
    n_rows = n_rows or max(t.data.n_train for t in trials)
    with jax.enable_x64(True):
        out = _fit_replicas(
            to_device(dataset, first.data, TEST_CHUNK),
            np.asarray([t.seed for t in trials], np.uint32),  # host values: no tiny programs
            np.asarray([t.data.n_train for t in trials]),
            np.asarray([getattr(t.data, "label_noise", 0.0) for t in trials]),
            np.asarray([t.fit.ridge for t in trials]),
            np.asarray([t.model.n_features for t in trials]),
            model=program_trial(first).model,
            n_rows=n_rows,
            p_eff_inputs=min(first.fit.p_eff_inputs, len(dataset.y_test)),
        )
        out = jax.tree.map(np.asarray, out)
    rows = []
    for i, t in enumerate(trials):
        row = {k: float(v[i]) for k, v in out.items()}
        row["n_params"] = kind_of(t).count(t)
        row["program_width"] = program_trial(first).model.n_features
        rows.append(row)
    return rows


def bytes_per_replica(trial: Trial) -> int:
    """A float64 upper estimate of one replica's device memory, to size packs."""
    n, p = trial.data.n_train, kind_of(trial).program_width(trial)
    dim = trial.data.input_dim
    return 8 * (
        4 * n * p
        + min(n, p) * (n + p)
        + 3 * TEST_CHUNK * p
        + n * dim
        + min(trial.fit.p_eff_inputs, trial.data.test_size) * p * 2
    )
