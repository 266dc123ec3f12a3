"""A user's arrays from a Python loader: ``data: {name: python, loader: "pkg.mod:load"}``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dd.datasets.user import Arrays, UserData, loader_arrays, user_kind
from dd.spec.fields import NO_OPTIONS, Options, join
from dd.spec.user_code import check_import_path


@dataclass(frozen=True, kw_only=True)
class PythonData(UserData):
    """Arrays returned by ``loader`` ("package.module:function"), called with ``options``:
    a mapping with the keys x_train, y_train, x_test, y_test, or those four in a tuple."""

    name: str = "python"
    loader: str
    options: Options = NO_OPTIONS

    def check(self, path: str) -> None:
        check_import_path(join(path, "loader"), self.loader)
        super().check(path)


def arrays_of(data: PythonData) -> Arrays:
    return loader_arrays(data.loader, data.options, data.task, data.classes)


def example_arrays(n_train: int = 40, n_test: int = 30, dim: int = 5) -> tuple[np.ndarray, ...]:
    """A loader as a user writes one, for trying the kind (its ``tiny`` case): Gaussian inputs
    labelled by their largest of the first three coordinates."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_train + n_test, dim)).astype(np.float32)
    y = np.argmax(x[:, :3], axis=1)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


KIND = user_kind(
    PythonData,
    arrays_of,
    tiny=lambda name, folder: {
        "name": "python",
        "loader": "dd.datasets.python:example_arrays",
        "n_train": 30,
    },
)
