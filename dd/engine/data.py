"""Datasets on the host: a fixed pool of training examples and a fixed test set per data config.

``load_dataset`` asks the config's kind (``dd.datasets.registry``) for its host arrays, built
once per process, from files found through the ``Locations`` that the driver's settings give
(the pack worker loads its pack's dataset with them before the engine asks for it). What
varies per trial (which ``n_train`` pool examples it sees, which labels are noised, the
Gaussian rows) is drawn on device from the trial's key by ``dd.engine.device_data.training_rows``,
so any pack layout gives a trial the same data.
"""

from __future__ import annotations

import threading

import numpy as np

from dd.datasets.base import Dataset, Locations
from dd.datasets.registry import kind_of
from dd.spec.config import Data
from dd.spec.errors import DataError

CACHED_POOLS = 8
_pools: dict[Data, Dataset] = {}  # by neutral config, the least recently used first
_pools_lock = threading.Lock()  # a worker's packs in flight load from threads


def load_dataset(data: Data, locations: Locations | None = None) -> Dataset:
    """The pool and test set of ``data``, cached per process: read through ``locations``
    (default: ``Locations()``) the first time, the cached arrays after that (a location is
    not content: the same config names the same data wherever its files are).

    Raises DataError when files hold fewer examples than the config asks for.
    """
    dataset = _load_pool(data.neutral(), locations or Locations())
    if dataset.x_pool is not None and data.n_train > len(dataset.y_pool):
        raise DataError(
            f"{data.name}: n_train = {data.n_train} but the training files hold "
            f"{len(dataset.y_pool)} examples"
        )
    return dataset


def _load_pool(data: Data, locations: Locations) -> Dataset:
    """The cached pool of ``data`` (the least recently used goes beyond ``CACHED_POOLS``),
    loaded once however many threads ask."""
    with _pools_lock:
        dataset = _pools.pop(data, None)
        if dataset is None:
            dataset = kind_of(data).load(data, locations)
        _pools[data] = dataset
        while len(_pools) > CACHED_POOLS:
            del _pools[next(iter(_pools))]
        return dataset


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
