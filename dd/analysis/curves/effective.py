"""Effective parameters (Curth et al. 2023): the model-wise test losses redrawn against the
effective number of parameters on test inputs, which closed-form fits measure (p_eff_test).

matplotlib loads inside the figure function (``dd status`` checks specs through the
registry and stays light).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dd.analysis.curves import model_wise, tiny
from dd.analysis.curves.base import (
    CurveKind,
    CurveSet,
    capacity_axis,
    no_check,
    series_order,
    told_nowhere,
)
from dd.store.schema import column_name

NAME = "effective_parameters"
EFFECTIVE_METRICS = ("test_mse", "test_error")  # drawn against effective parameters


@dataclass(frozen=True)
class Effective:
    """The effective-parameter table and the model-wise curves it redraws."""

    table: pa.Table  # series columns, x, p_eff_test, and the mean of each EFFECTIVE_METRICS
    curves: CurveSet


def effective_table(curves: CurveSet) -> pa.Table | None:
    """Per curve point, the mean ``p_eff_test`` beside the mean test losses, in x order: the
    raw-count curve redrawn against effective parameters; None when the sweep measured no
    effective parameters."""
    series_cols = [column_name(s) for s in curves.series]
    wanted = ("p_eff_test", *EFFECTIVE_METRICS)
    points: dict[tuple, dict] = {}
    for r in curves.points.to_pylist():
        if r["metric"] in wanted:
            key = (*(r[c] for c in series_cols), r["x"])
            blank = {**{c: r[c] for c in series_cols}, "x": r["x"], **dict.fromkeys(wanted)}
            points.setdefault(key, blank)[r["metric"]] = r["mean"]
    if not any(p["p_eff_test"] is not None for p in points.values()):
        return None
    return pa.Table.from_pylist([points[k] for k in sorted(points, key=series_order)])


def compute(rows, spec, earlier) -> Effective | None:
    """From the model-wise curves computed before it (None without effective parameters)."""
    curves = earlier.get(model_wise.NAME)
    table = effective_table(curves) if curves is not None else None
    return None if table is None else Effective(table, curves)


def plot_effective(table: pa.Table, curves: CurveSet, spec):
    """Each test loss against the raw feature count (left) and against the effective
    parameters on test inputs (right, Curth et al. 2023): points coloured by the raw count
    and joined in its order, so a double descent that folds back into a U shows as a path
    that runs out to the threshold's p_eff and returns. The threshold point is ringed."""
    import matplotlib.colors
    from matplotlib.figure import Figure

    from dd.analysis.plots import plain_log_ticks, series_label

    series_cols = [column_name(s) for s in curves.series]
    metrics = [m for m in EFFECTIVE_METRICS if table[m].null_count < len(table)]
    fig = Figure(figsize=(9.5, 3.6 * len(metrics)), layout="constrained")
    axes = fig.subplots(len(metrics), 2, squeeze=False)
    rows = table.to_pylist()
    keys = sorted({tuple(r[c] for c in series_cols) for r in rows}, key=series_order)
    xs = np.array([r["x"] for r in rows], float)
    norm = matplotlib.colors.LogNorm(xs.min(), xs.max()) if xs.min() > 0 else None
    thresholds = {
        tuple(lm.get(c) for c in series_cols): lm["threshold_x"]
        for lm in curves.landmarks.to_pylist()
    }
    for (ax_raw, ax_eff), metric in zip(axes, metrics, strict=True):
        for key in keys:
            mine = [
                r
                for r in rows
                if tuple(r[c] for c in series_cols) == key
                and r[metric] is not None
                and r["p_eff_test"] is not None
            ]
            x = np.array([r["x"] for r in mine])
            y = np.array([r[metric] for r in mine])
            p_eff = np.array([r["p_eff_test"] for r in mine])
            label = series_label(curves, key) or None
            for ax, horizontal in ((ax_raw, x), (ax_eff, p_eff)):
                ax.plot(horizontal, y, "-", color="0.6", lw=1, zorder=1, label=label)
                dots = ax.scatter(horizontal, y, c=x, cmap="viridis", norm=norm, s=16, zorder=2)
                at = np.flatnonzero(x == thresholds.get(key))
                ax.scatter(
                    horizontal[at], y[at], s=90, facecolors="none", edgecolors="crimson", zorder=3
                )
        for ax, xlabel in ((ax_raw, curves.x), (ax_eff, "effective parameters (p_eff_test)")):
            ax.set_xscale("log")
            plain_log_ticks(ax.xaxis)
            if metric == "test_mse":
                ax.set_yscale("log")
                plain_log_ticks(ax.yaxis)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(metric)
        ax_raw.set_title(f"{metric} against {curves.x}")
        ax_eff.set_title(f"{metric} against effective parameters")
        plain_log_ticks(fig.colorbar(dots, ax=ax_eff, label=curves.x).ax.yaxis)
    fig.suptitle(
        f"{spec.name}: effective parameters (ringed: interpolation threshold)", fontsize=10
    )
    return fig


KIND = CurveKind(
    name=NAME,
    tiny=tiny.FITTED,
    needs="a swept model field (drawn where the rows hold p_eff_test: closed-form fits)",
    axis=capacity_axis,
    compute=compute,
    tables=lambda eff: {NAME: eff.table},
    figures=lambda eff, spec: {f"{NAME}.png": plot_effective(eff.table, eff.curves, spec)},
    summary=told_nowhere,
    sections=told_nowhere,
    check=no_check,
    curve_set=False,
)
