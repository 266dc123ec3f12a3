"""Epoch-wise curves: every evaluation of trained models against the epoch, one curve per
model, and the (model axis x epoch) heatmap of the test error (Nakkiran et al.'s Fig. 2).

matplotlib loads inside the figure functions: ``dd status`` parses specs, which imports the
registry to check the ``curves:`` section, and must stay light.
"""

from __future__ import annotations

import numpy as np

from dd.analysis.curves import tiny
from dd.analysis.curves.base import (
    CurveKind,
    CurveSet,
    build_curves,
    curve_tables,
    landmark_sections,
    no_check,
    told_nowhere,
    trained,
)
from dd.analysis.curves.intervals import with_intervals
from dd.analysis.curves.landmarks import interpolation_threshold, peak_index
from dd.analysis.curves.verdict import epoch_verdict
from dd.store.schema import column_name

NAME = "epoch_wise"


def axis(spec) -> str | None:
    return "epoch" if trained(spec) else None


def compute(rows, spec, earlier) -> CurveSet:
    curves = build_curves(
        rows, spec, NAME, "epoch", landmark=interpolation_threshold, peak=peak_index
    )
    return with_intervals(curves, spec, interpolation_threshold)


def plot_heatmap(curves: CurveSet, spec, metric: str = "test_error"):
    """Mean ``metric`` over (model axis, epoch) as a Figure; None unless the curves have
    exactly one series axis."""
    from matplotlib.figure import Figure

    from dd.analysis.plots import cell_edges, edges

    if curves.kind != NAME or len(curves.series) != 1 or len(curves.points) == 0:
        return None
    col = column_name(curves.series[0])
    rows = [r for r in curves.points.to_pylist() if r["metric"] == metric]
    if not rows:
        return None
    ys = sorted({float(r[col]) for r in rows})
    xs = sorted({r["x"] for r in rows})
    grid = np.full((len(ys), len(xs)), np.nan)
    for r in rows:
        grid[ys.index(float(r[col])), xs.index(r["x"])] = r["mean"]
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    (y_edges, y_scale) = cell_edges(ys)  # a swept weight decay may include 0: linear
    mesh = ax.pcolormesh(edges(xs), y_edges, grid, cmap="magma", shading="flat")
    ax.set_xscale("log")
    ax.set_yscale(y_scale)
    ax.set_xlabel("epoch")
    ax.set_ylabel(curves.series[0])
    fig.colorbar(mesh, ax=ax, label=f"mean {metric}")
    ax.set_title(f"{spec.name}: {metric} over {curves.series[0]} and epochs", fontsize=9)
    fig.tight_layout()
    return fig


def figures(curves: CurveSet, spec) -> dict:
    from dd.analysis.plots import plot_curves

    out = {f"{NAME}.png": plot_curves(curves, spec)}
    heatmap = plot_heatmap(curves, spec, "test_error")
    if heatmap is not None:
        out["heatmap_test_error.png"] = heatmap
    return out


KIND = CurveKind(
    name=NAME,
    tiny=tiny.TRAINED,
    needs="trained models (closed-form fits have no epochs)",
    axis=axis,
    compute=compute,
    tables=curve_tables,
    figures=figures,
    summary=told_nowhere,  # one landmark line per series would drown the rest: see the verdict
    sections=landmark_sections,
    check=no_check,
    verdict=epoch_verdict,
)
