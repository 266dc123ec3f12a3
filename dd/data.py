"""Datasets: a fixed pool of training examples and a fixed test set per data config.

``load_dataset`` returns host arrays, built once per process (MNIST-1D is also cached on
disk as .npz, since the generator takes seconds). What varies per trial (which ``n_train``
pool examples it sees, which labels are noised, the Gaussian rows) is drawn on device from the
trial's key by ``dd.device_data.training_rows``, so any pack layout gives a trial the same data.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from dd.config import Data, DigitsData, GaussianData, ImageData, Mnist1dData, ModularData, UserData
from dd.errors import DataError


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Host arrays. For regression ``n_classes`` is 0 and targets are floats.

    Gaussian data has no pool (``x_pool`` is None): its training rows are drawn per trial,
    from ``beta`` and ``noise_var``. Image pools stay uint8 (a quarter of the memory) and are
    standardised per channel by ``dd.device_data.prepare_inputs`` as batches are taken.
    """

    x_pool: np.ndarray | None
    y_pool: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    beta: np.ndarray | None = None  # the teacher in input coordinates (Gaussian data)
    scale: np.ndarray | None = None  # each input coordinate's standard deviation
    noise_var: float = 0.0
    x_mean: np.ndarray | None = None  # per-channel statistics of uint8 image pools
    x_std: np.ndarray | None = None


def load_dataset(data: Data) -> Dataset:
    """The pool and test set of ``data`` (cached per process).

    Raises DataError when files hold fewer examples than the config asks for.
    """
    dataset = _load_pool(data.neutral())
    if dataset.x_pool is not None and data.n_train > len(dataset.y_pool):
        raise DataError(
            f"{data.name}: n_train = {data.n_train} but the training files hold "
            f"{len(dataset.y_pool)} examples"
        )
    if isinstance(data, ImageData) and len(dataset.y_test) < data.n_test:
        raise DataError(
            f"{data.name}: n_test = {data.n_test} but the test files hold "
            f"{len(dataset.y_test)} examples"
        )
    return dataset


@functools.lru_cache(maxsize=8)
def _load_pool(data: Data) -> Dataset:
    if isinstance(data, Mnist1dData):
        x_pool, y_pool, x_test, y_test = _mnist1d_arrays(data)
        return Dataset(x_pool, y_pool, x_test[: data.n_test], y_test[: data.n_test], 10)
    if isinstance(data, DigitsData):
        return _digits()
    if isinstance(data, ModularData):
        from dd.modular import table

        pairs, answers = table(data.p, data.op)  # a trial tests on the pairs it does not train on
        return Dataset(pairs, answers, pairs, answers, data.p)
    if isinstance(data, ImageData):
        from dd.images import load_images

        loaded = load_images(data.name, data.data_dir)
        x_pool = loaded["x_train"]
        scaled = x_pool.reshape(-1, x_pool.shape[-1]) / 255.0
        return Dataset(
            x_pool,
            loaded["y_train"],
            loaded["x_test"][: data.n_test],
            loaded["y_test"][: data.n_test],
            loaded["n_classes"],
            x_mean=scaled.mean(0).astype(np.float32),
            x_std=scaled.std(0).astype(np.float32),
        )
    if isinstance(data, UserData):
        from dd.user_data import load

        arrays = load(data)
        return Dataset(
            arrays.x_train,
            arrays.y_train,
            arrays.x_test[: data.n_test],
            arrays.y_test[: data.n_test],
            arrays.summary.n_classes,
        )
    if isinstance(data, GaussianData):
        scale = np.concatenate([np.ones(data.dim), np.full(data.slow_dim, data.slow_scale)])
        slow = np.sqrt(data.slow_beta_norm2 / max(data.slow_dim, 1)) / data.slow_scale
        beta = np.concatenate(
            [np.full(data.dim, np.sqrt(data.beta_norm2 / data.dim)), np.full(data.slow_dim, slow)]
        )
        rng = np.random.default_rng(data.test_seed)
        x_test = rng.standard_normal((data.n_test, len(scale))) * scale
        y_test = x_test @ beta + np.sqrt(data.noise_var) * rng.standard_normal(data.n_test)
        return Dataset(
            None, None, x_test, y_test, 0, beta=beta, scale=scale, noise_var=data.noise_var
        )
    raise TypeError(f"no loader for {type(data).__name__}")  # config validation prevents this


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))  # the fixed split, same everywhere
    x, y = x[order] / 16.0, y[order].astype(np.int32)
    n_test = DigitsData.n_test
    return Dataset(x[n_test:], y[n_test:], x[:n_test], y[:n_test], 10)


def cache_dir() -> Path:
    """Where generated datasets are cached: $DD_CACHE_DIR, else ~/.cache/dd."""
    return Path(os.environ.get("DD_CACHE_DIR") or Path.home() / ".cache" / "dd")


def _mnist1d_arrays(data: Mnist1dData) -> tuple[np.ndarray, ...]:
    """Generate (or read from the .npz cache) MNIST-1D with the package's own generator."""
    n_total = data.train_pool + data.n_test
    n_made = -(-n_total // 10) * 10  # the generator makes num_samples // 10 per class
    params = {"num_samples": n_made, "seed": data.generator_seed, "version": 1}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / f"mnist1d-{n_made}-{data.generator_seed}-{digest}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    except (OSError, KeyError, ValueError):
        from mnist1d.data import get_dataset_args, make_dataset

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


def test_chunks(dataset: Dataset, chunk: int) -> dict[str, np.ndarray]:
    """The test set padded to whole chunks: (C, T, ...) inputs, (C, T) labels and a 0/1 mask,
    for a ``lax.scan`` that bounds evaluation memory at one chunk."""
    m = len(dataset.y_test)
    chunk = min(chunk, m)
    n_chunks = -(-m // chunk)
    pad = n_chunks * chunk - m
    x, y = dataset.x_test, dataset.y_test
    x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
    y = np.concatenate([y, np.zeros(pad, y.dtype)])
    mask = (np.arange(n_chunks * chunk) < m).astype(np.float32)
    return {
        "x_test_CTD": x.reshape((n_chunks, chunk) + x.shape[1:]),
        "y_test_CT": y.reshape(n_chunks, chunk),
        "mask_test_CT": mask.reshape(n_chunks, chunk),
    }
