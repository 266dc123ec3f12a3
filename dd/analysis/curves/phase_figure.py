"""Nanda's phases drawn on the accuracy curves: one panel per cell of the sweep (its lowest
seed), train and test accuracy against steps, with memorisation, circuit formation and
cleanup shaded where ``dd.analysis.curves.circuits`` located them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dd.analysis.curves.base import series_order

PHASE_SPANS = (  # (label, start column, end column, colour)
    ("memorisation", None, "memorisation_end", "#fdd0a2"),
    ("circuit formation", "circuit_start", "cleanup_start", "#c6dbef"),
    ("cleanup", "cleanup_start", "t_generalise", "#c7e9c0"),
)
MAX_PANELS = 12


def plot_nanda_phases(grok: pa.Table, traces: dict, spec):
    """A Figure of every cell's first trial (by seed) with its located phases shaded."""
    from matplotlib.figure import Figure

    rows = grok.to_pylist()
    swept = grok.column_names[1 : grok.column_names.index("t_memorise")]
    cells = [c for c in swept if c != "seed"]
    chosen: dict[tuple, dict] = {}
    for r in sorted(rows, key=lambda r: r.get("seed", 0)):
        chosen.setdefault(tuple(r[c] for c in cells), r)
    picked = sorted(chosen.items(), key=lambda kv: series_order(kv[0]))[:MAX_PANELS]
    n = len(picked)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.6 * nrows + 0.6))
    grid = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (cell, r) in zip(grid, picked, strict=False):
        t = traces[r["trial_id"]]
        end = float(t["step"][-1])
        for label, start, stop, colour in PHASE_SPANS:
            lo = float(t["step"][0]) if start is None else r[start]
            hi = r[stop]
            if lo is not None and hi is not None and hi == hi and hi > lo:
                ax.axvspan(lo, min(hi, end), color=colour, label=label, lw=0)
        ax.plot(t["step"], t["train_acc"], color="tab:orange", lw=1.2, label="train")
        ax.plot(t["step"], t["test_acc"], color="tab:blue", lw=1.2, label="test")
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        title = ", ".join(
            f"{c}={v:g}" if isinstance(v, float) else f"{c}={v}"
            for c, v in zip(cells, cell, strict=True)
        )
        ax.set_title(f"{title or spec.name} (seed {r.get('seed', 0)})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in grid[n:]:
        ax.set_visible(False)
    handles, labels = grid[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    fig.legend(unique.values(), unique.keys(), fontsize=7, loc="lower center", ncol=5)
    fig.suptitle(f"{spec.name}: Nanda's phases (accuracy against step)", fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return fig


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


ALGORITHM_COLOURS = {"clock": "#1f77b4", "pizza": "#ff7f0e", "neither": "#bbbbbb"}


def plot_algorithms(grok: pa.Table, spec):
    """How many trials of each cell (its swept values but the seed) found each algorithm
    (clock, pizza, neither: ``dd.analysis.curves.circuits``), as stacked bars (a Figure)."""
    from matplotlib.figure import Figure

    swept = grok.column_names[1 : grok.column_names.index("t_memorise")]
    cells = [c for c in swept if c != "seed"]
    counts: dict[tuple, dict[str, int]] = {}
    for r in grok.to_pylist():
        cell = counts.setdefault(tuple(r[c] for c in cells), dict.fromkeys(ALGORITHM_COLOURS, 0))
        cell[r["algorithm"]] += 1
    keys = sorted(counts, key=series_order)
    fig = Figure(figsize=(1.6 + 0.6 * len(keys), 3.6))
    ax = fig.subplots()
    bottom = np.zeros(len(keys))
    for name, colour in ALGORITHM_COLOURS.items():
        height = np.array([counts[k][name] for k in keys], float)
        ax.bar(range(len(keys)), height, bottom=bottom, color=colour, label=name)
        bottom += height
    labels = [", ".join(_text(v) for v in k) or "all" for k in keys]
    ax.set_xticks(range(len(keys)), labels, rotation=45, fontsize=7)
    ax.set_xlabel(", ".join(cells) or "trials")
    ax.set_ylabel("trials")
    ax.legend(fontsize=7)
    ax.set_title(f"{spec.name}: clock or pizza (Zhong et al.)", fontsize=9)
    fig.tight_layout()
    return fig
