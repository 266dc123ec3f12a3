"""Model-wise curves: each trial's final evaluation against a capacity axis (a model field),
the interpolation threshold and the test peak located, the theory drawn where it applies."""

from __future__ import annotations

from dd.analysis.curves import theory_overlay, tiny
from dd.analysis.curves.base import (
    CurveKind,
    CurveSet,
    build_curves,
    capacity_axis,
    curve_tables,
    final_rows,
    landmark_sections,
)
from dd.analysis.curves.intervals import with_intervals
from dd.analysis.curves.landmarks import (
    check_landmark_fields,
    interpolation_threshold,
    landmark_lines,
    peak_index,
)
from dd.analysis.curves.lead import Lead
from dd.analysis.curves.verdict import capacity_verdict

NAME = "model_wise"


def compute(rows, spec, earlier) -> CurveSet:
    curves = build_curves(
        final_rows(rows),
        spec,
        NAME,
        capacity_axis(spec),
        landmark=interpolation_threshold,
        peak=peak_index,
    )
    return with_intervals(curves, spec, interpolation_threshold)


def figures(curves: CurveSet, spec) -> dict:
    from dd.analysis.plots import plot_curves  # matplotlib loads for figures only

    return {f"{NAME}.png": plot_curves(curves, spec, overlay=theory_overlay.overlay)}


KIND = CurveKind(
    name=NAME,
    tiny=tiny.FITTED,
    needs="a swept model field (or curves.x)",
    axis=capacity_axis,
    compute=compute,
    tables=curve_tables,
    figures=figures,
    summary=lambda curves: landmark_lines(curves, "threshold"),
    sections=landmark_sections,
    check=check_landmark_fields,
    verdict=lambda curves: capacity_verdict(curves, "model-wise"),
    lead=Lead(
        rank=1,
        title="model-wise",
        lines=lambda curves: capacity_verdict(curves, "model-wise"),
        figures=(f"{NAME}.png",),
        curves=NAME,
    ),
)
