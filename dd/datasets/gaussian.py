"""The linear teacher of the theory: Gaussian inputs, a linear target plus noise, no pool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dd.datasets.base import Dataset, DatasetKind, Locations
from dd.spec.config import Data
from dd.spec.fields import bounded


@dataclass(frozen=True, kw_only=True)
class GaussianData(Data):
    """The linear teacher of the theory: x ~ N(0, I_dim), y = x . beta + noise.

    beta spreads ``beta_norm2`` evenly over the coordinates (beta_j^2 = beta_norm2 / dim), so a
    model that sees the first p coordinates misses ||beta_Tc||^2 = beta_norm2 (dim - p) / dim.
    Training rows are drawn per trial; the test set is fixed by ``test_seed``.

    ``slow_dim`` > 0 appends coordinates of scale ``slow_scale`` carrying signal energy
    ``slow_beta_norm2``: features that gradient descent learns slowly, the two-speed linear
    model of Heckel & Yilmaz 2020 whose risk shows epoch-wise double descent.
    """

    name: str = "gaussian"
    dim: int = bounded(200, lo=1)
    n_train: int = 100
    n_test: int = 10000
    beta_norm2: float = bounded(1.0, lo=0.0)
    noise_var: float = bounded(0.25, lo=0.0)
    test_seed: int = 0
    slow_dim: int = bounded(0, lo=0)
    slow_scale: float = bounded(1.0, lo=0, lo_open=True)
    slow_beta_norm2: float = bounded(0.0, lo=0.0)

    CLASSIFICATION: ClassVar[bool] = False
    FIXED_POOL: ClassVar[bool] = False

    @property
    def pool_size(self) -> int:
        return 10**9  # rows are drawn fresh per trial: no fixed pool limits n_train

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.dim + self.slow_dim,)


def load(data: GaussianData, locations: Locations) -> Dataset:
    """The teacher and the fixed test set; training rows are drawn per trial on device."""
    scale = np.concatenate([np.ones(data.dim), np.full(data.slow_dim, data.slow_scale)])
    slow = np.sqrt(data.slow_beta_norm2 / max(data.slow_dim, 1)) / data.slow_scale
    beta = np.concatenate(
        [np.full(data.dim, np.sqrt(data.beta_norm2 / data.dim)), np.full(data.slow_dim, slow)]
    )
    rng = np.random.default_rng(data.test_seed)
    x_test = rng.standard_normal((data.n_test, len(scale))) * scale
    y_test = x_test @ beta + np.sqrt(data.noise_var) * rng.standard_normal(data.n_test)
    return Dataset(None, None, x_test, y_test, 0, beta=beta, scale=scale, noise_var=data.noise_var)


KIND = DatasetKind(
    configs=(GaussianData,),
    load=load,
    tiny=lambda name, folder: {"name": name, "dim": 6, "n_train": 20, "n_test": 30},
)
