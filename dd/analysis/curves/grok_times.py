"""Grokking times and phases: each trial's time to memorise and to generalise, and its phase,
with their figures (times against a swept axis, the phase diagram) and terminal lines.

Pure functions of Arrow tables (the rows of modular-arithmetic sweeps, ``dd.engine.train``);
matplotlib loads inside the figure functions (``dd status`` checks specs through the
registry and stays light).

Phases (Liu et al. 2022), from the accuracies at the end of the budget and the first steps
T_train, T_test at which train / test accuracy reach ``phase_accuracy`` a:
- comprehension: both reach a and T_test <= ``phase_gap_ratio`` x T_train;
- grokking: both reach a, test more than ``phase_gap_ratio`` times later;
- memorisation: train reaches a, test does not; confusion: train does not.
With corrupted labels (Doshi et al.), on the final row, with m the accuracy on the corrupted
pairs against their corrupted labels (memorisation) and v against their true labels (inversion):
- test >= a: inversion if v > m, else coexistence (corrupted labels kept while generalising);
- test < a: memorisation if m >= a; forgetting if the clean training pairs reach a while
  m < a; confusion otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dd.analysis.curves import grokking, tiny
from dd.analysis.curves.base import CurveKind, Section, plain, series_order
from dd.analysis.curves.circuits import ALGORITHMS, algorithm, nanda_phases
from dd.analysis.curves.grok_cells import TIMES, TOLD, cell_lines, grok_cells
from dd.analysis.curves.landmarks import check_swept
from dd.analysis.curves.lead import Lead
from dd.store.schema import column_name

NAME = "grok_times"
CIRCUIT_MEASURES = ("grad_symmetricity", "distance_irrelevance")  # final values, in that order


def first_step(steps: np.ndarray, accuracy: np.ndarray, level: float) -> float:
    """The first step whose accuracy is >= ``level`` (NaN if none: not within the budget)."""
    return bracket(steps, accuracy, level)[1]


def bracket(steps: np.ndarray, accuracy: np.ndarray, level: float) -> tuple[float, float]:
    """(after, first): the accuracy crossed ``level`` in (after, first], ``first`` the first
    evaluated step at it and ``after`` the evaluation before (0 where it is the first); both
    NaN if none is: the rows hold evaluations, so a time is known only to this interval."""
    hit = np.flatnonzero(np.nan_to_num(accuracy, nan=-1.0) >= level)
    if not len(hit):
        return float("nan"), float("nan")
    return (float(steps[hit[0] - 1]) if hit[0] else 0.0), float(steps[hit[0]])


def _by_trial(rows: pa.Table) -> dict[str, dict[str, np.ndarray]]:
    order = rows.sort_by([("trial_id", "ascending"), ("step", "ascending")])
    ids = np.asarray(order["trial_id"].to_pylist())
    cols = {
        c: order[c].to_numpy(zero_copy_only=False)
        for c in order.column_names
        if not pa.types.is_list(order.schema.field(c).type)
    }
    return {tid: {c: v[ids == tid] for c, v in cols.items()} for tid in dict.fromkeys(ids)}


def _phase(t: dict[str, np.ndarray], spec, corrupted: bool) -> str:
    a, last = spec.curves.phase_accuracy, -1
    train_acc, test_acc = 1 - t["train_error"], 1 - t["test_error"]
    if corrupted:
        memorised = 1 - t["train_error_noisy"][last]
        inverted = t["noisy_true_acc"][last]
        if test_acc[last] >= a:
            return "inversion" if inverted > memorised else "coexistence"
        if memorised >= a:
            return "memorisation"
        return "forgetting" if 1 - t["train_error_clean"][last] >= a else "confusion"
    t_train = first_step(t["step"], train_acc, a)
    t_test = first_step(t["step"], test_acc, a)
    if np.isnan(t_train):
        return "confusion"
    if np.isnan(t_test):
        return "memorisation"
    return "comprehension" if t_test <= spec.curves.phase_gap_ratio * t_train else "grokking"


@dataclass(frozen=True)
class GrokTimes:
    """The per-trial table (``curves/grok_times.parquet``) and each trial's accuracy traces
    over steps (``{trial_id: {"step", "train_acc", "test_acc": arrays}}``) for the figures;
    ``cells``: the median times per cell with the seeds' range (``curves/grok_cells.parquet``,
    ``dd.analysis.curves.grok_cells``)."""

    table: pa.Table
    traces: dict
    cells: pa.Table


def grok_table(rows: pa.Table, spec) -> pa.Table:
    """One row per trial: its swept values, T_memorise, T_generalise (first steps with train /
    test accuracy >= ``grok_accuracy``, NaN if never), ``_after`` each the evaluation before
    it (the accuracy crossed in (after, T]; ``train.eval_extra`` narrows it), their ratio,
    final accuracies, phase, Nanda's phase boundaries and Zhong's algorithm label
    (``dd.analysis.curves.circuits``)."""
    level = spec.curves.grok_accuracy
    records = []
    for tid, t in _by_trial(rows).items():
        corrupted = bool(np.nan_to_num(t.get("data_label_noise", np.zeros(1)))[0] > 0)
        mem_after, t_mem = bracket(t["step"], 1 - t["train_error"], level)
        gen_after, t_gen = bracket(t["step"], 1 - t["test_error"], level)
        boundaries = nanda_phases(
            t["step"],
            1 - t["train_error"],
            1 - t["test_error"],
            t.get("test_loss"),
            t.get("restricted_loss"),
            t.get("excluded_loss"),
            level,
        )
        final = {m: float(t[m][-1]) if m in t else float("nan") for m in CIRCUIT_MEASURES}
        generalised = bool(1 - t["test_error"][-1] >= level)
        records.append(
            {
                "trial_id": tid,
                **{column_name(a): plain(t[column_name(a)][0]) for a in spec.axes},
                "t_memorise": t_mem,
                "t_generalise": t_gen,
                "t_memorise_after": mem_after,
                "t_generalise_after": gen_after,
                "ratio": t_gen / t_mem,
                "final_train_acc": float(1 - t["train_error"][-1]),
                "final_test_acc": float(1 - t["test_error"][-1]),
                "final_memorisation": float(1 - t["train_error_noisy"][-1]),
                "final_inversion": float(t["noisy_true_acc"][-1]),
                "budget": float(t["step"][-1]),
                "phase": _phase(t, spec, corrupted),
                **boundaries,
                "algorithm": algorithm(*final.values(), generalised),
            }
        )
    return pa.Table.from_pylist(records)


def phase_axes(spec) -> tuple[str, str] | None:
    """The two axes of the phase diagram: the spec's, else the first two swept (not seed)."""
    swept = [a for a in spec.axes if a != "seed"]
    x = spec.curves.phase_x or (swept[0] if swept else None)
    y = spec.curves.phase_y or next((a for a in swept if a != x), None)
    return (x, y) if x and y else None


def time_axis(spec) -> str | None:
    """The swept axis the grokking times are drawn against (the first not seed)."""
    return spec.curves.x or next((a for a in spec.axes if a != "seed"), None)


PHASE_COLOURS = {
    "comprehension": "#1b9e77",
    "grokking": "#7570b3",
    "memorisation": "#d95f02",
    "confusion": "#999999",
    "inversion": "#1b9e77",
    "coexistence": "#66a61e",
    "forgetting": "#e7298a",
}


def plot_grok_times(table: pa.Table, spec, axis: str):
    """Time to memorise and to generalise per trial against ``axis`` (a Figure), medians
    joined; trials that never generalise are drawn at the top edge as open markers. A text
    axis (an objective) stands its values at category positions."""
    from matplotlib.figure import Figure

    raw = table[column_name(axis)].to_pylist()
    categories = None
    if any(isinstance(v, str) for v in raw):  # e.g. train.objective: one position per value
        categories = sorted(set(raw), key=lambda v: series_order((v,)))
        raw = [categories.index(v) for v in raw]
    xs = np.asarray(raw, float)
    mem, gen = (np.asarray(table[c].to_pylist(), float) for c in ("t_memorise", "t_generalise"))
    budget = float(np.nanmax(table["budget"].to_numpy()))
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    for values, colour, label in (
        (mem, "tab:orange", "memorise (train)"),
        (gen, "tab:blue", "generalise (test)"),
    ):
        reached = ~np.isnan(values)
        ax.scatter(xs[reached], values[reached], color=colour, s=14, alpha=0.6)
        ax.scatter(
            xs[~reached],
            np.full((~reached).sum(), budget),
            facecolors="none",
            edgecolors=colour,
            s=24,
        )
        grid = np.unique(xs)
        medians = [
            np.median(np.where(np.isnan(values[xs == g]), np.inf, values[xs == g])) for g in grid
        ]
        finite = np.isfinite(medians)
        ax.plot(grid[finite], np.asarray(medians)[finite], "-", color=colour, label=label)
    ax.axhline(budget, color="grey", lw=0.6, ls=":")
    ax.set_yscale("log")
    if categories is not None:
        ax.set_xticks(range(len(categories)), [_tick_label(v) for v in categories], fontsize=7)
    elif np.all(xs > 0) and xs.max() / xs.min() >= 10:
        ax.set_xscale("log")
    ax.set_xlabel(axis)
    ax.set_ylabel(f"first step with accuracy >= {spec.curves.grok_accuracy:g}")
    ax.set_title(
        f"{spec.name}: time to memorise and to generalise\n(median line; open "
        "markers: not within the budget)",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _tick_label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plot_phases(table: pa.Table, spec, axes: tuple[str, str]):
    """The phase of each cell of ``axes`` (the most common over its seeds) as a coloured grid
    (a Figure)."""
    import matplotlib.colors
    import matplotlib.patches
    from matplotlib.figure import Figure

    cx, cy = (column_name(a) for a in axes)
    xs, ys = (sorted(set(table[c].to_pylist()), key=lambda v: series_order((v,))) for c in (cx, cy))
    phases = sorted(set(table["phase"].to_pylist()), key=list(PHASE_COLOURS).index)
    grid = np.full((len(ys), len(xs)), -1)
    counts = {}
    for r in table.to_pylist():
        counts.setdefault((r[cx], r[cy]), []).append(r["phase"])
    for (x, y), found in counts.items():
        common = max(phases, key=found.count)
        grid[ys.index(y), xs.index(x)] = phases.index(common)
    cmap = matplotlib.colors.ListedColormap([PHASE_COLOURS[p] for p in phases])
    fig = Figure(figsize=(1.2 + 0.7 * len(xs), 1.4 + 0.5 * len(ys)))
    ax = fig.subplots()
    ax.imshow(
        np.ma.masked_less(grid, 0),
        cmap=cmap,
        vmin=-0.5,
        vmax=len(phases) - 0.5,
        origin="lower",
        aspect="auto",
    )
    ax.set_xticks(range(len(xs)), [_tick_label(v) for v in xs], rotation=45, fontsize=7)
    ax.set_yticks(range(len(ys)), [_tick_label(v) for v in ys], fontsize=7)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    handles = [matplotlib.patches.Patch(color=PHASE_COLOURS[p], label=p) for p in phases]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(f"{spec.name}: phases (accuracy {spec.curves.phase_accuracy:g})", fontsize=9)
    fig.tight_layout()
    return fig


def summary(grok: pa.Table) -> list[str]:
    """The verdict line (median times over the trials that generalise, each in the interval
    its bracketing evaluations give: the medians of ``_after`` and of the times), the phases
    and Nanda's and Zhong's lines."""
    t = grok.to_pydict()
    done = [i for i, g in enumerate(t["t_generalise"]) if g == g]
    counts = {p: t["phase"].count(p) for p in dict.fromkeys(t["phase"])}

    def told(time: str) -> str:
        median, after = (np.median([t[c][i] for i in done]) for c in (time, f"{time}_after"))
        return f"{TOLD[time]} {median:g} in ({after:g}, {median:g}]"

    line = f"grokking: {len(done)} of {len(grok)} trials generalise within the budget" + (
        f" (median {', '.join(told(c) for c in TIMES)} steps, between the evaluations "
        "that bracket them)"
        if done
        else ""
    )
    return [line, "phases: " + ", ".join(f"{p} {n}" for p, n in counts.items())] + _circuit_lines(
        grok
    )


def _median(values: list) -> str:
    found = [v for v in values if v is not None]
    return f"{np.median(found):g}" if found else "-"


def _circuit_lines(grok: pa.Table) -> list[str]:
    """Nanda's ordering over the trials that cleaned up, and the algorithms per cell."""
    rows = grok.to_pylist()
    lines = []
    cleaned = [r for r in rows if r["cleanup_start"] is not None]
    if cleaned:
        ordered = [
            r
            for r in cleaned
            if r["circuit_start"] is not None and r["circuit_start"] < r["cleanup_start"]
        ]
        lines.append(
            f"Nanda's phases: the excluded loss rises before the test accuracy jumps in "
            f"{len(ordered)} of {len(cleaned)} trials that generalise (median memorisation end "
            f"{_median([r['memorisation_end'] for r in cleaned])}, circuit formation from "
            f"{_median([r['circuit_start'] for r in cleaned])}, cleanup from "
            f"{_median([r['cleanup_start'] for r in cleaned])} steps)"
        )
    axes = [c for c in grok.column_names[1 : grok.column_names.index("t_memorise")] if c != "seed"]
    cells: dict[tuple, list[str]] = {}
    for r in rows:
        cells.setdefault(tuple(r[c] for c in axes), []).append(r["algorithm"])
    if any(label != "neither" for labels in cells.values() for label in labels):
        parts = [
            (
                ", ".join(
                    f"{c}={v:g}" if isinstance(v, float) else f"{c}={v}"
                    for c, v in zip(axes, cell, strict=True)
                )
                or "all"
            )
            + ": "
            + ", ".join(f"{a} {labels.count(a)}" for a in ALGORITHMS if labels.count(a))
            for cell, labels in sorted(cells.items(), key=lambda kv: series_order(kv[0]))
        ]
        lines.append("algorithms (clock / pizza, Zhong et al.): " + "; ".join(parts))
    return lines


def compute(rows, spec, earlier) -> GrokTimes:
    traces = {
        tid: {"step": t["step"], "train_acc": 1 - t["train_error"], "test_acc": 1 - t["test_error"]}
        for tid, t in _by_trial(rows).items()
    }
    table = grok_table(rows, spec)
    cells = grok_cells(table, [column_name(a) for a in spec.axes if a != "seed"])
    return GrokTimes(table, traces, cells)


def told(result: GrokTimes) -> list[str]:
    """The summary's first two lines, each cell's median times and seeds' range, the rest."""
    lines = summary(result.table)
    axes = result.cells.column_names[: result.cells.column_names.index("n_seeds")]
    return lines[:2] + cell_lines(result.cells, axes) + lines[2:]


def figures(result: GrokTimes, spec) -> dict:
    from dd.analysis.curves.phase_figure import plot_algorithms, plot_nanda_phases

    grok = result.table
    out = {"nanda_phases.png": plot_nanda_phases(grok, result.traces, spec)}
    if set(grok["algorithm"].to_pylist()) - {"neither"}:  # a clock or a pizza was found
        out["algorithms.png"] = plot_algorithms(grok, spec)
    x = time_axis(spec)
    if x is not None:
        out["grok_times.png"] = plot_grok_times(grok, spec, x)
    axes = phase_axes(spec)
    if axes is not None:
        out["phases.png"] = plot_phases(grok, spec, axes)
    return out


KIND = CurveKind(
    name=NAME,
    tiny=tiny.MODULAR,
    needs="modular-arithmetic data (data.name: modular)",
    axis=grokking.axis,
    compute=compute,
    tables=lambda result: {NAME: result.table, "grok_cells": result.cells},
    figures=figures,
    summary=told,
    sections=lambda result: [
        Section("Grokking times per cell (median over seeds; seeds' range)", result.cells, True),
        Section("Grokking times and phases", result.table, landmark=False),
    ],
    check=lambda curves, axes, trial: check_swept(curves, axes, ("phase_x", "phase_y")),
    curve_set=False,
    lead=Lead(  # the verdict (how many generalise, median times) and phases, then the times
        rank=3,
        title="grokking",
        lines=lambda result: summary(result.table)[:2],
        figures=("unification.png", "grok_times.png"),
        curves=grokking.NAME,
        sections=True,
    ),
)
