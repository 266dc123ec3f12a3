"""Figures of curve sets (a log-x axis, each landmark marked) and the drawing helpers that
the curve kinds' own figures share.

Each function returns a ``matplotlib.figure.Figure`` drawn without pyplot, so importing dd
leaves matplotlib's backend and pyplot's figure list alone (notebooks keep their inline
figures); the caller saves or shows it (``dd.analysis.aggregate`` writes PNGs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import matplotlib
import matplotlib.cm
import matplotlib.colors
import matplotlib.ticker
import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure

from dd.analysis.curves.base import CurveSet, SweepSpec, series_order
from dd.store.schema import column_name

PANELS = (  # (title, [(metric, line style)], log y); a panel shows if any metric is present
    ("accuracy", [("test_accuracy", "-"), ("train_accuracy", ":")], False),
    ("zero-one error", [("test_error", "-"), ("train_error", ":")], False),
    ("noised training labels", [("train_error_noisy", "-"), ("noisy_true_acc", ":")], False),
    ("squared loss", [("test_mse", "-"), ("train_mse", ":"), ("population_risk", "--")], True),
    ("loss", [("test_loss", "-"), ("train_loss", ":")], True),
    ("coefficient l2 norm", [("coef_norm", "-")], True),
    ("parameter l2 norm", [("param_norm", "-")], True),
    ("effective parameters", [("p_eff_test", "-"), ("p_eff_train", ":")], True),
    ("excluded / restricted loss", [("excluded_loss", "-"), ("restricted_loss", ":")], True),
    ("embedding Fourier Gini", [("fourier_gini", "-")], False),
    ("key frequencies", [("n_key_freqs", "-")], False),
    (
        "symmetricity / distance irrelevance",
        [("grad_symmetricity", "-"), ("distance_irrelevance", ":")],
        False,
    ),
)
MAX_LABELLED_SERIES = 8  # past this, lines are told apart by the colour bar, not the legend
MAX_PANELS_PER_ROW = 4
MAX_SEED_LINES = 10  # per-seed curves are drawn behind the mean up to this many seeds
VIRIDIS = matplotlib.colormaps["viridis"]


def series_label(curves: CurveSet, key: tuple) -> str:
    return ", ".join(f"{s}={v}" for s, v in zip(curves.series, key, strict=True))


def _rows(
    table: pa.Table,
    metric: str,
    series_cols: list[str],
    key: tuple,
    columns: tuple[str, ...] = ("x", "mean", "ci_low", "ci_high"),
) -> dict[str, np.ndarray]:
    keep = np.array([m == metric for m in table["metric"].to_pylist()])
    for col, value in zip(series_cols, key, strict=True):
        keep &= np.array([v == value for v in table[col].to_pylist()])
    sub = table.filter(pa.array(keep))
    return {c: sub[c].to_numpy() for c in columns}


def series_colours(keys: list[tuple]):
    """A colour per series and, for one numeric series axis, the norm of its colour bar
    (logarithmic when the values span a decade or more)."""
    numeric = keys and all(len(k) == 1 and isinstance(k[0], (int, float)) for k in keys)
    if not numeric:
        return list(VIRIDIS(np.linspace(0, 0.9, len(keys)))), None
    values = np.array([float(k[0]) for k in keys])
    log = values.min() > 0 and values.max() / values.min() >= 10
    norm = (matplotlib.colors.LogNorm if log else matplotlib.colors.Normalize)(
        values.min(), values.max()
    )
    return [VIRIDIS(0.9 * norm(v)) for v in values], norm


def plot_curves(
    curves: CurveSet,
    spec: SweepSpec,
    *,
    marked: str = "interpolation threshold",
    overlay: Callable[[Any, CurveSet, SweepSpec], None] | None = None,
) -> Figure:
    """One curve set as rows of panels (four to a row), each series' landmark dashed
    (``marked`` names it in the title); ``overlay(ax, curves, spec)`` draws on the squared
    loss panel (a kind's theory curve).

    With more than ``MAX_LABELLED_SERIES`` series, only each panel's first (test-side) metric
    is drawn, and a colour bar replaces the legend.
    """
    series_cols = [column_name(s) for s in curves.series]
    table = curves.points
    present = set(table["metric"].to_pylist()) if len(table) else set()
    panels = [p for p in PANELS if any(m in present for m, _ in p[1])]
    n_cols = min(len(panels), MAX_PANELS_PER_ROW)
    n_rows = -(-len(panels) // n_cols)
    fig = Figure(figsize=(4.2 * n_cols, 3.6 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    axes = axes.reshape(1, -1)
    keys = sorted({tuple(r[c] for c in series_cols) for r in table.to_pylist()}, key=series_order)
    crowded = len(keys) > MAX_LABELLED_SERIES
    colours, norm = series_colours(keys)
    landmarks = curves.landmarks.to_pylist()
    for ax, (title, lines, log_y) in zip(axes[0], panels, strict=False):  # spare axes hidden
        lowest = np.inf  # of the panel's first (test-side) metric: train curves may reach 0
        drawn: list[float] = []  # means and single seeds: the axis fits these, not the bands
        shown = [(m, style) for m, style in lines if m in present]
        for colour, key in zip(colours, keys, strict=True):
            label_key = "" if crowded else series_label(curves, key)
            for metric, style in shown[:1] if crowded else shown:
                r = _rows(table, metric, series_cols, key)
                if len(r["x"]) == 0:
                    continue
                label = None if crowded else metric + (f" ({label_key})" if label_key else "")
                ax.plot(
                    r["x"],
                    r["mean"],
                    style,
                    color=colour,
                    label=label,
                    marker=".",
                    ms=3,
                    lw=1 if crowded else 1.5,
                )
                if metric == lines[0][0]:
                    lowest = min(lowest, np.nanmin(r["mean"]))
                drawn += list(r["mean"])
                if len(curves.per_seed):
                    drawn += list(
                        _rows(curves.per_seed, metric, series_cols, key, ("value",))["value"]
                    )
                ax.fill_between(
                    r["x"],
                    r["ci_low"],
                    r["ci_high"],
                    color=colour,
                    alpha=0.08 if crowded else 0.2,
                    lw=0,
                )
                if not crowded and metric == shown[0][0]:
                    _plot_seeds(ax, curves, metric, series_cols, key, colour)
            mark = next(
                (lm for lm in landmarks if tuple(lm.get(c) for c in series_cols) == key), None
            )
            if mark and mark["threshold_x"] is not None:
                ax.axvline(mark["threshold_x"], color=colour, ls="--", lw=0.8, alpha=0.7)
        refined = (  # what the refinement rounds added, marked under each value
            (curves.added, "^", "0.3", 4, "added by refinement"),
            (curves.seeded, "x", "C3", 5, "seeds added by refinement"),
        )
        for xs, marker, colour_of, size, label in refined:
            if xs:
                ax.plot(
                    xs,
                    [0.0] * len(xs),
                    marker,
                    color=colour_of,
                    ms=size,
                    clip_on=False,
                    transform=ax.get_xaxis_transform(),
                    label=label,
                )
        if title == "squared loss" and overlay is not None:
            overlay(ax, curves, spec)
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
        _fit_y(ax, np.asarray(drawn, float), lowest, log_y)
        ax.set_xlabel(curves.x)
        ax.set_title(title + (f" ({shown[0][0]})" if crowded else ""))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    if crowded and norm is not None:
        mappable = matplotlib.cm.ScalarMappable(cmap=truncated_viridis(), norm=norm)
        fig.colorbar(mappable, ax=axes[0].tolist(), label=curves.series[0], pad=0.01)
    fig.suptitle(f"{spec.name}: {curves.kind.replace('_', '-')} (dashed: {marked})", fontsize=10)
    return fig


def plain_log_ticks(axis) -> None:
    """Ticks at 1, 2, 5 x 10^k labelled as plain numbers (2, 5, 10, 20, ...); over more than
    three decades only the powers of ten are labelled, so labels do not run together."""

    def label(value: float, _) -> str:
        low, high = sorted(axis.get_view_interval())
        wide = low > 0 and high / low > 1e3
        mantissa = value / 10 ** np.floor(np.log10(value)) if value > 0 else 1.0
        return "" if wide and not np.isclose(mantissa, 1.0) else f"{value:g}"

    axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(label))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _fit_y(ax, drawn: np.ndarray, lowest: float, log_y: bool) -> None:
    """Fit the y axis to the drawn means and seeds, so that the 95% band of two or three
    seeds (a Student t with 1-2 degrees of freedom is wide) cannot squash the curves."""
    drawn = drawn[np.isfinite(drawn)]
    if len(drawn) == 0:
        return
    if log_y:
        ax.set_yscale("log")
        positive = drawn[drawn > 0]
        if np.isfinite(lowest) and lowest > 0 and len(positive):
            ax.set_ylim(lowest / 3, positive.max() * 3)
        return
    lo, hi = drawn.min(), drawn.max()
    pad = 0.08 * (hi - lo) or 0.05 * max(abs(hi), 1.0)
    ax.set_ylim(lo - pad, hi + pad)


def _plot_seeds(
    ax, curves: CurveSet, metric: str, series_cols: list[str], key: tuple, colour
) -> None:
    """Each seed's own curve, thin and faint behind the mean (up to MAX_SEED_LINES seeds)."""
    if len(curves.per_seed) == 0:
        return
    r = _rows(curves.per_seed, metric, series_cols, key, ("x", "seed", "value"))
    seeds = np.unique(r["seed"])
    if len(seeds) > MAX_SEED_LINES:
        return
    for seed in seeds:
        mine = r["seed"] == seed
        ax.plot(r["x"][mine], r["value"][mine], "-", color=colour, lw=0.5, alpha=0.35)


def truncated_viridis():
    """The part of viridis the series colours use (0 to 0.9)."""
    return matplotlib.colors.ListedColormap(VIRIDIS(np.linspace(0, 0.9, 256)))


def edges(centres: list[float]) -> np.ndarray:
    """Cell edges between log-spaced centres (geometric midpoints)."""
    c = np.asarray(centres, dtype=float)
    if len(c) == 1:
        return np.array([c[0] / 1.5, c[0] * 1.5])
    mids = np.sqrt(c[:-1] * c[1:])
    return np.concatenate([[c[0] ** 2 / mids[0]], mids, [c[-1] ** 2 / mids[-1]]])


def cell_edges(centres: list[float]) -> tuple[np.ndarray, str]:
    """Cell edges around sorted centres and the axis scale: geometric midpoints on a log
    axis when every centre is positive, else arithmetic ones on a linear axis."""
    c = np.asarray(centres, dtype=float)
    if np.all(c > 0):
        return edges(centres), "log"
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5]), "linear"
    mids = (c[:-1] + c[1:]) / 2
    return np.concatenate([[2 * c[0] - mids[0]], mids, [2 * c[-1] - mids[-1]]]), "linear"
