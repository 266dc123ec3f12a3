"""Sample-wise curves: each trial's final evaluation against data.n_train, the EMC (the
largest n_train still fit) and the test peak beyond the best fitted n located."""

from __future__ import annotations

from dd.analysis.curves import theory_overlay, tiny
from dd.analysis.curves.base import (
    CurveKind,
    CurveSet,
    build_curves,
    curve_tables,
    final_rows,
    landmark_sections,
    no_check,
)
from dd.analysis.curves.intervals import with_intervals
from dd.analysis.curves.landmarks import emc_value, landmark_lines, sample_peak_index
from dd.analysis.curves.lead import Lead
from dd.analysis.curves.verdict import capacity_verdict

NAME = "sample_wise"
X = "data.n_train"


def axis(spec) -> str | None:
    return X if X in spec.axes or spec.curves.x == X else None


def compute(rows, spec, earlier) -> CurveSet:
    curves = build_curves(
        final_rows(rows), spec, NAME, X, landmark=emc_value, peak=sample_peak_index
    )
    return with_intervals(curves, spec, emc_value)


def figures(curves: CurveSet, spec) -> dict:
    from dd.analysis.plots import plot_curves  # matplotlib loads for figures only

    return {
        f"{NAME}.png": plot_curves(
            curves, spec, marked="EMC, the largest n_train fit", overlay=theory_overlay.overlay
        )
    }


KIND = CurveKind(
    name=NAME,
    tiny=tiny.FITTED,
    needs="a swept data.n_train (or curves.x: data.n_train)",
    axis=axis,
    compute=compute,
    tables=curve_tables,
    figures=figures,
    summary=lambda curves: landmark_lines(curves, "EMC"),
    verdict=lambda curves: capacity_verdict(curves, "sample-wise", "EMC"),
    sections=landmark_sections,
    check=no_check,
    lead=Lead(  # the EMC: the verdict, then each curve's EMC with its interval
        rank=2,
        title="sample-wise (EMC)",
        lines=lambda curves: [
            *capacity_verdict(curves, "sample-wise", "EMC"),
            *landmark_lines(curves, "EMC"),
        ],
        figures=(f"{NAME}.png", "emc.png"),
        curves=NAME,
    ),
)
