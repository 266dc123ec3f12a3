"""Model-wise curves at each trained trial's best epoch on the sweep's test metric (test
error, or test MSE for a regression): early stopping's view of the same capacity axis."""

from __future__ import annotations

from dd.analysis.curves import tiny
from dd.analysis.curves.base import (
    CurveKind,
    CurveSet,
    best_rows,
    build_curves,
    capacity_axis,
    curve_tables,
    landmark_sections,
    no_check,
    test_metric,
    trained,
)
from dd.analysis.curves.intervals import with_intervals
from dd.analysis.curves.landmarks import interpolation_threshold, landmark_lines, peak_index

NAME = "model_wise_best"


def axis(spec) -> str | None:
    return capacity_axis(spec) if trained(spec) else None


def compute(rows, spec, earlier) -> CurveSet:
    curves = build_curves(
        best_rows(rows, test_metric(spec)),
        spec,
        NAME,
        axis(spec),
        landmark=interpolation_threshold,
        peak=peak_index,
    )
    return with_intervals(curves, spec, interpolation_threshold)


def figures(curves: CurveSet, spec) -> dict:
    from dd.analysis.plots import plot_curves  # matplotlib loads for figures only

    return {f"{NAME}.png": plot_curves(curves, spec)}


KIND = CurveKind(
    name=NAME,
    tiny=tiny.TRAINED,
    needs="trained models and a swept model field (or curves.x)",
    axis=axis,
    compute=compute,
    tables=curve_tables,
    figures=figures,
    summary=lambda curves: landmark_lines(curves, "threshold"),
    sections=landmark_sections,
    check=no_check,
)
