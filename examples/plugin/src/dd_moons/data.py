"""Two interleaved half-moons in the plane: a two-class dataset made with numpy, no download."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dd.datasets.base import Dataset, DatasetKind, Locations
from dd.spec.config import ClassificationData
from dd.spec.fields import bounded


@dataclass(frozen=True, kw_only=True)
class MoonsData(ClassificationData):
    """Points on two half-circles, (cos t, sin t) and (1 - cos t, 1/2 - sin t) for t uniform in
    [0, pi], plus Gaussian noise of standard deviation ``noise``: a fixed pool of ``train_pool``
    points and ``n_test`` test points, both drawn from ``data_seed``."""

    name: str = "moons"
    noise: float = bounded(0.1, lo=0.0)
    train_pool: int = bounded(1000, lo=1)
    n_train: int = bounded(100, lo=1)
    n_test: int = bounded(1000, lo=1)
    data_seed: int = 0

    @property
    def pool_size(self) -> int:
        return self.train_pool

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (2,)

    @property
    def n_classes(self) -> int:
        return 2


def load(data: MoonsData, locations: Locations) -> Dataset:
    """The pool and the test set: each point's class at random, then its place on that moon."""
    rng = np.random.default_rng(data.data_seed)
    n = data.train_pool + data.n_test
    y = rng.integers(0, 2, n).astype(np.int32)
    t = rng.uniform(0.0, np.pi, n)
    x = np.where(
        y[:, None] == 0,
        np.stack([np.cos(t), np.sin(t)], axis=1),
        np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1),
    )
    x = (x + data.noise * rng.standard_normal((n, 2))).astype(np.float32)
    pool = data.train_pool
    return Dataset(x[:pool], y[:pool], x[pool:], y[pool:], n_classes=2)


def tiny(name: str, folder: Path) -> dict:
    """The tiny case dd's per-kind tests run this kind through."""
    return {"name": name, "train_pool": 40, "n_train": 30, "n_test": 20}


KIND = DatasetKind(configs=(MoonsData,), load=load, tiny=tiny)
