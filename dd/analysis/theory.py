"""Closed-form risk of min-norm least squares, the oracle the linear sweeps are tested against.

Belkin, Hsu & Xu 2019 ("Two models of double descent for weak features"): x ~ N(0, I_D),
y = x . beta + noise of variance s2, a model fitted by min-norm least squares on the p
coordinates T of n samples. The expected test MSE, noise included, is

    p <= n - 2:      (||beta_Tc||^2 + s2) (1 + p / (n - p - 1))
    n-1 <= p <= n+1: infinite
    p >= n + 2:      ||beta_T||^2 (1 - n/p) + (||beta_Tc||^2 + s2) (1 + n / (p - n - 1))
"""

from __future__ import annotations

import numpy as np


def weak_features_risk(
    p: np.ndarray | int,
    n: np.ndarray | int,
    beta_T2: np.ndarray | float,
    beta_Tc2: np.ndarray | float,
    noise_var: float,
) -> np.ndarray:
    """Expected test MSE of the min-norm fit on p of the coordinates (inf near p = n)."""
    p, n = np.broadcast_arrays(np.asarray(p, dtype=float), np.asarray(n, dtype=float))
    beta_T2 = np.broadcast_to(np.asarray(beta_T2, dtype=float), p.shape)
    miss = np.asarray(beta_Tc2, dtype=float) + noise_var
    with np.errstate(divide="ignore", invalid="ignore"):
        under = miss * (1 + p / (n - p - 1))
        over = beta_T2 * (1 - n / p) + miss * (1 + n / (p - n - 1))
    return np.where(p <= n - 2, under, np.where(p >= n + 2, over, np.inf))


def gaussian_raw_features_risk(
    p: np.ndarray | int, n: np.ndarray | int, dim: int, beta_norm2: float, noise_var: float
) -> np.ndarray:
    """The risk for dd's gaussian data, whose beta spreads beta_norm2 evenly over dim
    coordinates; ``p`` and ``n`` broadcast (model-wise: p varies; sample-wise: n varies)."""
    p, n = np.broadcast_arrays(np.asarray(p, dtype=float), np.asarray(n, dtype=float))
    return weak_features_risk(p, n, beta_norm2 * p / dim, beta_norm2 * (dim - p) / dim, noise_var)
