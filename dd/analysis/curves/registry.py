"""The registered curve kinds, in the order the aggregator computes, writes and tells them
(a kind may read the results of the kinds before it: effective parameters and the EMC
read the model-wise curves). Adding a kind is one module and one line here."""

from __future__ import annotations

from dd.analysis.curves import (
    effective,
    emc,
    epoch_wise,
    grok_times,
    grokking,
    model_wise,
    model_wise_best,
    sample_wise,
    unification,
)
from dd.analysis.curves.base import CurveKind, SweepSpec

CURVE_KINDS: tuple[CurveKind, ...] = (
    model_wise.KIND,
    effective.KIND,
    model_wise_best.KIND,
    sample_wise.KIND,
    epoch_wise.KIND,
    grokking.KIND,
    grok_times.KIND,
    unification.KIND,
    emc.KIND,
)


def applicable(spec: SweepSpec) -> list[CurveKind]:
    """The kinds that apply to the sweep, in registry order."""
    return [kind for kind in CURVE_KINDS if kind.axis(spec) is not None]


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
    for kind in CURVE_KINDS:
        kind.check(curves, axes, trial)
