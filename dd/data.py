"""Datasets on the host: a fixed pool of training examples and a fixed test set per data config.

``load_dataset`` asks the config's kind (``dd.datasets.registry``) for its host arrays, built
once per process. What varies per trial (which ``n_train`` pool examples it sees, which labels
are noised, the Gaussian rows) is drawn on device from the trial's key by
``dd.device_data.training_rows``, so any pack layout gives a trial the same data.
"""

from __future__ import annotations

import functools

import numpy as np

from dd.config import Data
from dd.datasets.base import Dataset
from dd.datasets.registry import kind_of
from dd.errors import DataError


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
    return dataset


@functools.lru_cache(maxsize=8)
def _load_pool(data: Data) -> Dataset:
    return kind_of(data).load(data)


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
