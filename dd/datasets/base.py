"""What every dataset kind gives the engine: host arrays (``Dataset``) and one ``DatasetKind``.

A kind module defines its config class (a ``dd.spec.config.Data``), a loader returning a
``Dataset``, and a ``KIND``; ``dd.datasets.registry`` lists the kinds. The engine asks the
kind object and never which kind it holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dd.spec.config import Data, DataFacts


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Host arrays. For regression ``n_classes`` is 0 and targets are floats.

    Gaussian data has no pool (``x_pool`` is None): its training rows are drawn per trial,
    from ``beta`` and ``noise_var``. Image pools stay uint8 (a quarter of the memory) and are
    standardised per channel by ``dd.engine.device_data.prepare_inputs`` as batches are taken.
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


@dataclasses.dataclass(frozen=True)
class Locations:
    """Where this machine keeps dataset files: the image files' folder (a spec's
    ``data.data_dir`` wins) and the cache of generated datasets. They come from
    ``dd.spec.settings.Settings`` (read on the driver) and travel to the workers with the packs,
    so no worker reads its environment; being places, not content, no trial id holds them."""

    data_dir: str | None = None
    cache_dir: str = "~/.cache/dd"


def own_facts(data: Data) -> DataFacts:
    """The facts of a kind whose config knows them (arithmetic on its fields)."""
    return data.known_facts()


def no_check(data: Data, facts: DataFacts, path: str) -> None:
    """A kind whose config checks itself needs no resolve-stage check."""


def no_device_arrays(dataset: Dataset, data: Data) -> dict[str, Any]:
    """No arrays beyond the pool and the test chunks."""
    return {}


@dataclasses.dataclass(frozen=True)
class DatasetKind:
    """One kind of dataset.

    ``config``: its config class(es), by ``name``. ``load(data, locations)``: the ``Dataset``
    of a neutral config (``Data.neutral``; cached by the engine), its files found through
    ``locations`` (``Locations``). ``describe(data)``: its ``DataFacts`` (for user data: the
    arrays read and checked, the resolve stage's work).
    ``check(data, facts, path)``: what only the facts can tell (n_train against the pool).
    ``device_arrays(dataset, data)``: extra ``DeviceData`` fields of this kind, and the test
    chunks set to None where the kind evaluates its whole pool instead (the test set is the
    pool rows a replica does not train on: modular arithmetic). ``eval_floats(data)``: floats
    an evaluation holds beyond a chunk's activations (the whole pool's logits), for the
    memory estimate.
    ``checks_files``: its files are read once before scheduling (``dd.run.execute``), so a
    missing file is one error, not a failure in every pack.
    ``tiny(name, folder)``: a tiny ``data:`` mapping of the config ``name`` (any files it reads
    written under ``folder``), which tests/kinds runs every registered kind through, a plugin's
    included: a kind without one fails there.
    """

    configs: tuple[type, ...]
    load: Callable[[Data, Locations], Dataset]
    describe: Callable[[Data], DataFacts] = own_facts
    check: Callable[[Data, DataFacts, str], None] = no_check
    device_arrays: Callable[[Dataset, Data], dict[str, Any]] = no_device_arrays
    eval_floats: Callable[[Data], int] = lambda data: 0
    checks_files: bool = False
    tiny: Callable[[str, Path], dict[str, Any]] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for c in self.configs for name in config_names(c))


def config_names(config: type) -> tuple[str, ...]:
    """A config class's ``name`` default, or its ``NAMES`` where one class serves several."""
    return getattr(config, "NAMES", None) or (config.name,)
