"""Per-evaluation measures, by name: what a dataset kind adds to its rows (``Data.measures``)
and what a spec may ask for (``train.measures``).

To add a measure: one module (its ``Measure``: columns, and a ``"module:function"`` pure JAX
compute, see ``dd.models.measures.base``) + one line in ``MEASURES``; or, without editing dd,
an installed plugin's entry point in the group ``dd.metrics`` naming its ``Measure``
(``dd.spec.plugins``), or ``register(measure)`` from code every process runs (a test, or the
user module of a ``flax`` model). Nothing is registered on import: ``load()`` registers the
built-in measures, then the plugins', the first time the registry is asked. The store's schema
holds the core metrics plus every registered measure's columns. This module imports no JAX.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from dd.models.measures import grad_weight_cosine, layer_norms, modular, softmax_collapse
from dd.models.measures.base import Columns, Measure
from dd.spec.config import Trial
from dd.spec.errors import SpecError
from dd.spec.plugins import plugins

GROUP = "dd.metrics"

MEASURES: tuple[Measure, ...] = (
    modular.FOURIER,
    modular.RESTRICTED,
    modular.SYMMETRICITY,
    modular.DISTANCE,
    layer_norms.MEASURE,
    softmax_collapse.MEASURE,
    grad_weight_cosine.MEASURE,
)

_BY_NAME: dict[str, Measure] = {}
_LOADED: list[bool] = []  # one entry once load() has run


def load() -> tuple[Measure, ...]:
    """Every measure, registered once per process: the built-in ones, then the plugins' (one
    whose name or columns are taken is left out with one line on stderr)."""
    if not _LOADED:
        _LOADED.append(True)
        for measure in MEASURES:
            register(measure)
        for measure in plugins(GROUP, Measure, _BY_NAME):
            try:
                register(measure)
            except ValueError as error:  # its columns are taken
                print(f"dd: plugin ({GROUP}) left out: {error}", file=sys.stderr)
    return tuple(_BY_NAME.values())


def register(measure: Measure) -> Callable[[], None]:
    """Add ``measure`` in this process (a name or column already taken is an error; the
    same measure again is a no-op); returns its remover."""
    load()
    if _BY_NAME.get(measure.name) == measure:
        return lambda: None
    if measure.name in _BY_NAME:
        raise ValueError(f"measure {measure.name!r} is already registered")
    taken = {c: m.name for m in _BY_NAME.values() for c in m.columns}
    clash = sorted(set(measure.columns) & set(taken))
    if clash:
        raise ValueError(f"measure {measure.name!r}: columns {clash} are taken")
    _BY_NAME[measure.name] = measure
    return lambda: _BY_NAME.pop(measure.name, None)


def registered() -> tuple[Measure, ...]:
    """Every measure, in registration order."""
    return load()


def columns() -> Columns:
    """{column: (pyarrow type, description)} of every registered measure."""
    load()
    return {c: kind for m in _BY_NAME.values() for c, kind in m.columns.items()}


def requested(trial: Trial) -> tuple[str, ...]:
    """The names a trial asks for: its data kind's, then its spec's ``train.measures``."""
    asked = trial.data.measures()
    if trial.train is not None and trial.train.measures:
        asked += tuple(n.strip() for n in trial.train.measures.split(","))
    return tuple(dict.fromkeys(asked))


def for_trial(trial: Trial) -> tuple[Measure, ...]:
    """The measures a trial's evaluation computes, in registration order (a measure may read
    what those before it gave: the restricted loss reads the key frequencies)."""
    asked = set(requested(trial))
    load()
    return tuple(m for m in _BY_NAME.values() if m.name in asked)


def check(trial: Trial, path: str = "train.measures") -> None:
    """Every measure a trial asks for is registered."""
    load()
    unknown = [n for n in requested(trial) if n not in _BY_NAME]
    if unknown:
        raise SpecError(path, f"unknown measure {unknown[0]!r}; registered: {', '.join(_BY_NAME)}")
