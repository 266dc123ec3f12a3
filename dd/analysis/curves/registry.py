"""The registered curve kinds, in the order the aggregator computes, writes and tells them
(a kind may read the results of the kinds before it: effective parameters and the EMC
read the model-wise curves): the built-in kinds, then those of installed plugins (entry points
of the group ``dd.curves``, ``dd.spec.plugins``), after every built-in one. Adding a kind to dd
is one module and one line in ``BUILT_IN``. Nothing is registered on import: ``load()`` fills
the registry the first time it is asked."""

from __future__ import annotations

from dd.analysis.curves import (
    effective,
    emc,
    epoch_wise,
    grok_times,
    grokking,
    lu,
    measures,
    model_wise,
    model_wise_best,
    sample_wise,
    unification,
)
from dd.analysis.curves.base import CurveKind, SweepSpec
from dd.spec.plugins import plugins

GROUP = "dd.curves"

BUILT_IN: tuple[CurveKind, ...] = (
    model_wise.KIND,
    effective.KIND,
    model_wise_best.KIND,
    sample_wise.KIND,
    epoch_wise.KIND,
    grokking.KIND,
    grok_times.KIND,
    unification.KIND,
    emc.KIND,
    lu.KIND,
    measures.KIND,
)

_KINDS: list[CurveKind] = []


def load() -> tuple[CurveKind, ...]:
    """Every curve kind, built-in then plugins, registered once per process."""
    if not _KINDS:
        _KINDS.extend(BUILT_IN)
        _KINDS.extend(plugins(GROUP, CurveKind, [kind.name for kind in BUILT_IN]))
    return tuple(_KINDS)


def applicable(spec: SweepSpec) -> list[CurveKind]:
    """The kinds that apply to the sweep, in registry order."""
    return [kind for kind in load() if kind.axis(spec) is not None]


def curve_kinds(spec: SweepSpec) -> list[tuple[str, str]]:
    """(kind, x) for every kind that draws a curve set of the sweep; x is a config path or
    the ``epoch`` / ``step`` column.

    model_wise and sample_wise use each trial's final evaluation; for trained networks also
    model_wise_best (each trial at its best epoch on the test metric) and epoch_wise (every epoch);
    for modular arithmetic also grokking (every evaluation, against optimizer steps), so a
    modular sweep over width gets the same model-wise curves and width x epoch heatmap as any.
    """
    return [(kind.name, kind.axis(spec)) for kind in applicable(spec) if kind.curve_set]


def check_curves(curves, axes: list[str], trial) -> None:
    """Each kind checks the ``curves:`` fields it reads (a typo would otherwise read as a
    scientific result, "threshold not reached")."""
    for kind in load():
        kind.check(curves, axes, trial)
