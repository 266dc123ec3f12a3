"""The effective model complexity drawn: the final train metric over capacity x n_train with
the EMC through it, and each model's EMC over epochs."""

from __future__ import annotations

import matplotlib
import matplotlib.cm
import numpy as np
from matplotlib.figure import Figure

from dd.analysis.curves.base import series_order
from dd.analysis.curves.emc_values import EmcSet, final_emc
from dd.analysis.plots import cell_edges, plain_log_ticks, series_colours, truncated_viridis
from dd.store.schema import column_name


def plot_emc(emc: EmcSet, spec) -> Figure:
    """The effective model complexity, drawn without pyplot (the caller saves it). Left, the
    final mean train metric over capacity x n_train with the EMC drawn through it (one model:
    the metric against n_train, the EMC dashed); right, for trained models, the EMC of each
    model over epochs. Bars span the seeds' EMCs; open markers are censored (every swept
    n_train is fit)."""
    series_cols = [column_name(a) for a in emc.series]
    final = final_emc(emc).to_pylist()
    last = {tuple(r[c] for c in series_cols): r.get("epoch") for r in final}
    grid = [
        g
        for g in emc.grid.to_pylist()
        if g.get("epoch") == last.get(tuple(g[c] for c in series_cols))
    ]
    over_epochs = "epoch" in emc.table.column_names
    fig = Figure(figsize=(5.6 * (1 + over_epochs), 4.4), layout="constrained")
    axes = fig.subplots(1, 1 + over_epochs, squeeze=False)
    ax = axes[0][0]
    if len(series_cols) == 1 and all(isinstance(r[series_cols[0]], (int, float)) for r in final):
        _emc_plane(ax, fig, emc, final, grid, series_cols[0])
    else:
        _emc_lines(ax, emc, final, grid, series_cols)
    if over_epochs:
        _emc_over_epochs(axes[0][1], fig, emc, series_cols)
    fig.suptitle(
        f"{spec.name}: effective model complexity (largest n_train with mean "
        f"{emc.metric} < {emc.tol:g})",
        fontsize=10,
    )
    return fig


def _emc_plane(ax, fig, emc: EmcSet, final: list[dict], grid: list[dict], col: str) -> None:
    xs = sorted({float(g[col]) for g in grid})
    ns = sorted({float(g["n_train"]) for g in grid})
    values = np.full((len(ns), len(xs)), np.nan)
    for g in grid:
        values[ns.index(float(g["n_train"])), xs.index(float(g[col]))] = g["mean"]
    (x_edges, x_scale), (n_edges, n_scale) = cell_edges(xs), cell_edges(ns)
    mesh = ax.pcolormesh(x_edges, n_edges, values, cmap="viridis", shading="flat")
    fig.colorbar(mesh, ax=ax, label=f"final mean {emc.metric}")
    _draw_emc(ax, [float(r[col]) for r in final], final, "crimson", "EMC")
    ax.set_xscale(x_scale)
    ax.set_yscale(n_scale)
    for axis, scale in ((ax.xaxis, x_scale), (ax.yaxis, n_scale)):
        if scale == "log":
            plain_log_ticks(axis)
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(n_edges[0], n_edges[-1])
    ax.set_xlabel(emc.series[0])
    ax.set_ylabel("n_train")
    ax.set_title("final epoch", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")


def _emc_lines(
    ax, emc: EmcSet, final: list[dict], grid: list[dict], series_cols: list[str]
) -> None:
    """One model: its train metric against n_train, the EMC dashed. Several series axes: the
    EMC against the first, one line per value of the others."""
    if not series_cols:
        ns, means = np.array(sorted((g["n_train"], g["mean"]) for g in grid)).T
        ax.plot(ns, means, "o-", ms=3, color="tab:blue", label=f"mean {emc.metric}")
        ax.axhline(emc.tol, color="grey", lw=0.6, ls=":", label="tolerance")
        if final[0]["emc"] is not None:
            ax.axvline(
                final[0]["emc"], color="crimson", ls="--", lw=1, label=f"EMC = {final[0]['emc']:g}"
            )
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
        ax.set_xlabel("n_train")
        ax.set_ylabel(emc.metric)
    else:
        first, rest = series_cols[0], series_cols[1:]
        keys = sorted({tuple(r[c] for c in rest) for r in final}, key=series_order)
        colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, max(len(keys), 1)))
        for colour, key in zip(colours, keys, strict=False):
            mine = [r for r in final if tuple(r[c] for c in rest) == key]
            mine.sort(key=lambda r: series_order((r[first],)))
            label = ", ".join(f"{c}={v}" for c, v in zip(rest, key, strict=True)) or "EMC"
            _draw_emc(ax, [r[first] for r in mine], mine, colour, label)
        ax.set_xlabel(emc.series[0])
        ax.set_ylabel("EMC (n_train)")
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
    ax.set_title("final epoch", fontsize=9)
    ax.legend(fontsize=7)


def _draw_emc(ax, xs: list, rows: list[dict], colour, label: str) -> None:
    """EMC points joined, bars over the seeds' range, censored points open."""
    xs = np.asarray(xs, dtype=object)
    emc = np.array([np.nan if r["emc"] is None else r["emc"] for r in rows], float)
    low = np.array([np.nan if r["emc_low"] is None else r["emc_low"] for r in rows], float)
    high = np.array([np.nan if r["emc_high"] is None else r["emc_high"] for r in rows], float)
    censored = np.array([bool(r["censored"]) for r in rows])
    ax.plot(xs, emc, "-", color=colour, lw=1.5, label=label)
    bars = ~np.isnan(emc)
    ax.errorbar(
        xs[bars],
        emc[bars],
        yerr=[np.nan_to_num(emc - low)[bars], np.nan_to_num(high - emc)[bars]],
        fmt="none",
        ecolor=colour,
        lw=0.8,
        capsize=2,
    )
    ax.scatter(xs[bars & ~censored], emc[bars & ~censored], color=colour, s=18, zorder=3)
    ax.scatter(
        xs[bars & censored],
        emc[bars & censored],
        facecolors="white",
        edgecolors=colour,
        s=22,
        zorder=3,
    )


def _emc_over_epochs(ax, fig, emc: EmcSet, series_cols: list[str]) -> None:
    rows = emc.table.to_pylist()
    keys = sorted({tuple(r[c] for c in series_cols) for r in rows}, key=series_order)
    colours, norm = series_colours(keys)
    for colour, key in zip(colours, keys, strict=True):
        mine = sorted(
            (r for r in rows if tuple(r[c] for c in series_cols) == key), key=lambda r: r["epoch"]
        )
        label = (
            None
            if norm is not None
            else (", ".join(f"{c}={v}" for c, v in zip(emc.series, key, strict=True)) or "EMC")
        )
        _draw_emc(ax, [r["epoch"] for r in mine], mine, colour, label)
    if norm is not None:
        mappable = matplotlib.cm.ScalarMappable(cmap=truncated_viridis(), norm=norm)
        fig.colorbar(mappable, ax=ax, label=emc.series[0])
    elif ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax.xaxis)
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel("epoch")
    ax.set_ylabel("EMC (n_train)")
    ax.set_title("over epochs (a gap: no n_train fit yet)", fontsize=9)
