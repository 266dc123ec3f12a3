"""Grokking curves: every evaluation of a modular-arithmetic sweep against optimizer steps,
with train and test accuracies beside the errors (the first step below the threshold metric
is marked as memorisation). Their times and phases are ``dd.analysis.curves.grok_times``."""

from __future__ import annotations

from dd.analysis.curves import tiny
from dd.analysis.curves.base import (
    CurveKind,
    CurveSet,
    build_curves,
    curve_tables,
    no_check,
    told_nowhere,
    with_accuracies,
)
from dd.analysis.curves.intervals import with_intervals
from dd.analysis.curves.landmarks import interpolation_threshold, peak_index

NAME = "grokking"


def axis(spec) -> str | None:
    return "step" if spec.trials[0].data.name == "modular" else None


def compute(rows, spec, earlier) -> CurveSet:
    curves = build_curves(
        with_accuracies(rows),
        spec,
        NAME,
        "step",
        landmark=interpolation_threshold,
        peak=peak_index,
    )
    return with_intervals(curves, spec, interpolation_threshold)


def figures(curves: CurveSet, spec) -> dict:
    from dd.analysis.plots import plot_curves  # matplotlib loads for figures only

    return {f"{NAME}.png": plot_curves(curves, spec, marked="memorisation")}


KIND = CurveKind(
    name=NAME,
    tiny=tiny.MODULAR,
    needs="modular-arithmetic data (data.name: modular)",
    axis=axis,
    compute=compute,
    tables=curve_tables,
    figures=figures,
    summary=told_nowhere,  # the grok_times kind tells these sweeps' times and phases
    sections=told_nowhere,
    check=no_check,
)
