"""scikit-learn's bundled 8x8 digits: 1797 images, a fixed 1200 / 597 split, no download."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dd.datasets.base import Dataset, DatasetKind, Locations
from dd.spec.config import ClassificationData
from dd.spec.errors import SpecError
from dd.spec.fields import join

DIGITS_TEST_SIZE = 597  # scikit-learn digits: 1797 images, a fixed third held out for test


@dataclass(frozen=True, kw_only=True)
class DigitsData(ClassificationData):
    """scikit-learn's bundled 8x8 digits (1797 images), split 1200 train pool / 597 test."""

    name: str = "digits"
    n_train: int = 1200
    n_test: int = DIGITS_TEST_SIZE

    @property
    def pool_size(self) -> int:
        return 1797 - DIGITS_TEST_SIZE

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (64,)

    def check(self, path: str) -> None:
        super().check(path)
        if self.n_test != DIGITS_TEST_SIZE:
            raise SpecError(
                join(path, "n_test"), f"digits has a fixed test split of {DIGITS_TEST_SIZE} images"
            )


def load(data: DigitsData, locations: Locations) -> Dataset:
    from sklearn.datasets import load_digits  # scikit-learn is slow to import

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))  # the fixed split, same everywhere
    x, y = x[order] / 16.0, y[order].astype(np.int32)
    n_test = DIGITS_TEST_SIZE
    return Dataset(x[n_test:], y[n_test:], x[:n_test], y[:n_test], 10)


KIND = DatasetKind(
    configs=(DigitsData,), load=load, tiny=lambda name, folder: {"name": name, "n_train": 40}
)
