"""Closed-form fits: min-norm (ridge >= 0) least squares on raw, random Fourier or ReLU features.

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

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from dd.config import (
    FeatureModel,
    FourierFeatures,
    PcaFourierFeatures,
    RawFeatures,
    ReluFeatures,
    Trial,
)
from dd.data import load_dataset
from dd.device_data import DeviceData, prepare_inputs, to_device, training_rows
from dd.rng import named, scoped, trial_key

TEST_CHUNK = 1024  # test rows evaluated per step; bounds memory at TEST_CHUNK x n_features


def feature_params(key: jax.Array, model: FeatureModel, input_dim: int) -> dict[str, jax.Array]:
    """The random projection of a feature model, drawn from the trial key."""
    key = named(key, "features")
    if isinstance(model, FourierFeatures):
        n_freq = -(-model.n_fourier // 2)
        return {"v": jax.random.normal(key, (input_dim, n_freq)) / model.bandwidth}
    if isinstance(model, ReluFeatures):
        k_w, k_b = jax.random.split(key)
        return {
            "w": jax.random.normal(k_w, (input_dim, model.n_features)) / math.sqrt(input_dim),
            "b": jax.random.normal(k_b, (model.n_features,)),
        }
    return {}


def program_width(model: FeatureModel, input_dim: int) -> int:
    """The feature count a pack's program is compiled for.

    Raw features compile once at the full input width, the columns past a replica's
    ``n_features`` zeroed: a zero column changes neither the min-norm fit nor its predictions,
    so every p of a sweep shares one program. Random features compile per ``n_features``.
    """
    return input_dim if isinstance(model, RawFeatures) else model.n_features


def principal_axes(x_ND: jax.Array, k: int) -> jax.Array:
    """(D, k): the first ``k`` principal axes of the rows of ``x_ND``."""
    _, _, vt_RD = jnp.linalg.svd(x_ND - x_ND.mean(0), full_matrices=False)
    return vt_RD[:k].T


def featurize(model: FeatureModel, params: dict[str, jax.Array], x_ND: jax.Array) -> jax.Array:
    """phi(x): (N, D) inputs -> (N, model.n_features) features (``params`` from
    ``feature_params``, plus ``pca``, the principal axes, for ``PcaFourierFeatures``)."""
    if isinstance(model, RawFeatures):
        return x_ND[:, : model.n_features]
    if isinstance(model, FourierFeatures):
        proj_NF = x_ND @ params["v"]
        pairs = jnp.stack([jnp.cos(proj_NF), jnp.sin(proj_NF)], axis=-1)
        fourier_NF = pairs.reshape(x_ND.shape[0], -1)[:, : model.n_fourier]
        if isinstance(model, PcaFourierFeatures):
            return jnp.concatenate([x_ND @ params["pca"], fourier_NF], axis=1)
        return fourier_NF
    if isinstance(model, ReluFeatures):
        return jax.nn.relu(x_ND @ params["w"] + params["b"])
    raise TypeError(f"not a feature model: {model!r}")


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

    pca = (
        {"pca": principal_axes(flat(data.x_pool_PD), model.pca_components)}
        if isinstance(model, PcaFourierFeatures)
        else {}
    )

    def fit_one(seed, n, noise, lam, p):
        key = trial_key(seed)
        rows = training_rows(key, data, n_rows, n, noise)
        params = feature_params(key, model, input_dim) | pca
        mask_N = rows["mask"].astype(jnp.float64)
        # zeroed columns (past a replica's p) get zero coefficients, so only the train
        # matrix needs the column mask; test features are used as they are
        used_P = (jnp.arange(model.n_features) < p).astype(jnp.float64)
        phi_NP = featurize(model, params, flat(rows["x"])) * used_P * mask_N[:, None]
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
            phi_TP = featurize(model, params, flat(x_TD))
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
        smoother = featurize(model, params, x_eff) @ vt_RP.T * d_R
        out["p_eff_test"] = n / x_eff.shape[0] * jnp.sum(smoother**2)
        if data.beta_D is not None and isinstance(model, RawFeatures):
            beta, var = data.beta_D, data.scale_D**2  # coefs past p are 0
            width = model.n_features
            out["population_risk"] = (
                jnp.sum(var[:width] * (coef_PK[:, 0] - beta[:width]) ** 2)
                + jnp.sum(var[width:] * beta[width:] ** 2)
                + data.noise_var
            )
        return out

    return jax.vmap(fit_one)(seeds, n_train, label_noise, ridge, n_features)


@scoped()
def fit_pack(trials: list[Trial], n_rows: int | None = None) -> list[dict[str, float]]:
    """Fit every trial of a pack (all share data pool, model kind and program width) at once.

    ``n_rows`` (default: the largest n_train) is the row count replicas are padded to.
    Returns one dict of metrics per trial, in order.
    """
    first = trials[0]
    dataset = load_dataset(first.data)
    n_rows = n_rows or max(t.data.n_train for t in trials)
    with jax.enable_x64(True):
        out = _fit_replicas(
            to_device(dataset, first.data, TEST_CHUNK),
            jnp.asarray([t.seed for t in trials], jnp.uint32),
            jnp.asarray([t.data.n_train for t in trials]),
            jnp.asarray([getattr(t.data, "label_noise", 0.0) for t in trials]),
            jnp.asarray([t.fit.ridge for t in trials]),
            jnp.asarray([t.model.n_features for t in trials]),
            model=dataclasses.replace(
                first.model, n_features=program_width(first.model, first.data.input_dim)
            ),
            n_rows=n_rows,
            p_eff_inputs=min(first.fit.p_eff_inputs, len(dataset.y_test)),
        )
        out = jax.tree.map(np.asarray, out)
    n_outputs = max(dataset.n_classes, 1)
    rows = []
    for i, t in enumerate(trials):
        row = {k: float(v[i]) for k, v in out.items()}
        row["n_params"] = t.model.n_features * n_outputs
        rows.append(row)
    return rows


def bytes_per_replica(trial: Trial) -> int:
    """A float64 upper estimate of one replica's device memory, to size packs."""
    n, p = trial.data.n_train, program_width(trial.model, trial.data.input_dim)
    dim = trial.data.input_dim
    return 8 * (
        4 * n * p
        + min(n, p) * (n + p)
        + 3 * TEST_CHUNK * p
        + n * dim
        + min(trial.fit.p_eff_inputs, trial.data.n_test) * p * 2
    )
