"""Per-evaluation measures, by name: what a dataset kind adds to its rows (``Data.measures``)
and what a spec may ask for (``train.measures``).

To add a measure: one module (its ``Measure``: columns, and a ``"module:function"`` pure JAX
compute, see ``dd.models.measures.base``) + one line in ``MEASURES``; or, without editing dd,
``register(measure)`` from code every process runs (a test, or the user module of a ``flax``
model). The store's schema holds the core metrics plus every registered measure's columns.
This module imports no JAX.
"""

from __future__ import annotations

from collections.abc import Callable

from dd.models.measures import layer_norms, modular, softmax_collapse
from dd.models.measures.base import Columns, Measure
from dd.spec.config import Trial
from dd.spec.errors import SpecError

MEASURES: tuple[Measure, ...] = (
    modular.FOURIER,
    modular.RESTRICTED,
    modular.SYMMETRICITY,
    modular.DISTANCE,
    layer_norms.MEASURE,
    softmax_collapse.MEASURE,
)

_BY_NAME: dict[str, Measure] = {}


def register(measure: Measure) -> Callable[[], None]:
    """Add ``measure`` in this process (a name or column already taken is an error; the
    same measure again is a no-op); returns its remover."""
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


for _measure in MEASURES:
    register(_measure)


def registered() -> tuple[Measure, ...]:
    """Every measure, in registration order."""
    return tuple(_BY_NAME.values())


def columns() -> Columns:
    """{column: (pyarrow type, description)} of every registered measure."""
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
    return tuple(m for m in _BY_NAME.values() if m.name in asked)


def check(trial: Trial, path: str = "train.measures") -> None:
    """Every measure a trial asks for is registered."""
    unknown = [n for n in requested(trial) if n not in _BY_NAME]
    if unknown:
        raise SpecError(path, f"unknown measure {unknown[0]!r}; registered: {', '.join(_BY_NAME)}")
