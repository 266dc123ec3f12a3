"""MNIST-1D (Greydanus & Kobak) from the ``mnist1d`` procedural generator: no download.

The generator takes seconds, so its arrays are also cached on disk as .npz, in the settings'
``cache_dir`` ($DD_CACHE_DIR, else ~/.cache/dd; read on the driver and passed down).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dd.datasets.base import Dataset, DatasetKind, Locations
from dd.spec.config import ClassificationData
from dd.spec.fields import bounded


@dataclass(frozen=True, kw_only=True)
class Mnist1dData(ClassificationData):
    """MNIST-1D from the ``mnist1d`` procedural generator (Greydanus & Kobak), no download.

    The generator makes ``train_pool + n_test`` signals of length 40 with ``generator_seed``;
    the anchor setup is a 4000 / 12000 split.
    """

    name: str = "mnist1d"
    n_train: int = 4000
    n_test: int = 12000
    train_pool: int = bounded(4000, lo=10)
    generator_seed: int = 42

    @property
    def pool_size(self) -> int:
        return self.train_pool

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (40,)


def load(data: Mnist1dData, locations: Locations) -> Dataset:
    x_pool, y_pool, x_test, y_test = _arrays(data, Path(locations.cache_dir).expanduser())
    return Dataset(x_pool, y_pool, x_test[: data.n_test], y_test[: data.n_test], 10)


def _arrays(data: Mnist1dData, cache_dir: Path) -> tuple[np.ndarray, ...]:
    """Generate (or read from the .npz cache in ``cache_dir``) MNIST-1D with the package's own
    generator."""
    n_total = data.train_pool + data.n_test
    n_made = -(-n_total // 10) * 10  # the generator makes num_samples // 10 per class
    params = {"num_samples": n_made, "seed": data.generator_seed, "version": 1}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir / f"mnist1d-{n_made}-{data.generator_seed}-{digest}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    except (OSError, KeyError, ValueError):
        from mnist1d.data import get_dataset_args, make_dataset  # slow to import, rarely needed

        args = get_dataset_args()
        args.num_samples, args.train_split, args.seed = n_made, 1.0, data.generator_seed
        made = make_dataset(args)
        x, y = made["x"].astype(np.float32), made["y"].astype(np.int32)
        _atomic_savez(path, x=x, y=y)
    split = data.train_pool
    return x[:split], y[:split], x[split:n_total], y[split:n_total]


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # the cache is an optimisation; a read-only home only costs regeneration


KIND = DatasetKind(
    configs=(Mnist1dData,),
    load=load,
    tiny=lambda name, folder: {"name": name, "train_pool": 40, "n_train": 30, "n_test": 20},
)
