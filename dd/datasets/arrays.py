"""A user's arrays from an ``.npz`` file: ``data: {name: arrays, path: my.npz, n_train: ...}``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dd.datasets.user import Arrays, UserData, file_arrays, user_kind


@dataclass(frozen=True, kw_only=True)
class ArraysData(UserData):
    """Arrays from an ``.npz`` file at ``path`` (relative paths from the current directory);
    trial ids hash the file's bytes, not its path (``dd.spec.ids``)."""

    name: str = "arrays"
    path: str = dataclasses.field(metadata={"identity": "content"})  # ids hash the file

    def legacy_config(self) -> ArraysData:
        """This config as dd 0.3 hashed it into the trial id: ``n_test`` unset was the file's
        test size (read from the file then; ``dd.spec.ids.legacy_trial_id``)."""
        if self.n_test is not None:
            return self
        with np.load(self.path) as arrays:
            return dataclasses.replace(self, n_test=len(arrays["y_test"]))


def arrays_of(data: ArraysData) -> Arrays:
    return file_arrays(data.path, data.task, data.classes)


def tiny(name: str, folder: Path) -> dict:
    """A 70-example ``.npz`` of two classes, written to ``folder``, and a config reading it."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((70, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / "data.npz"
    np.savez(path, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    return {"name": "arrays", "path": str(path), "n_train": 30}


KIND = user_kind(ArraysData, arrays_of, tiny=tiny)
