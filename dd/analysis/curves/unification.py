"""Grokking and double descent on one page (Davies et al. 2023): for a modular sweep over a
model capacity, the model-wise curve at the last step, the capacity x step test-error heatmap
(epoch-wise behaviour at every width) and the times to memorise and to generalise, in three
panels that share the capacity axis. Drawn from the results of the kinds before it in the
registry (model_wise, grokking, grok_times); the report opens with this figure where it
applies."""

from __future__ import annotations

import numpy as np

from dd.analysis.curves import grok_times, grokking, model_wise, tiny
from dd.analysis.curves.base import CurveKind, capacity_axis, no_check, told_nowhere
from dd.store.schema import column_name

NAME = "unification"
FIGURE = f"{NAME}.png"


def axis(spec) -> str | None:
    return capacity_axis(spec) if grokking.axis(spec) is not None else None


def compute(rows, spec, earlier) -> dict | None:
    parts = {k: earlier.get(k) for k in (model_wise.NAME, grokking.NAME, grok_times.NAME)}
    return parts if all(v is not None for v in parts.values()) else None


def _mean_by(points, keys: list[str], metric: str) -> dict:
    out: dict = {}
    for p in points.to_pylist():
        if p["metric"] == metric:
            out.setdefault(tuple(p[k] for k in keys), []).append(p["mean"])
    return {k: float(np.mean(v)) for k, v in out.items()}


def plot(parts: dict, spec):
    """The three panels (a Figure), sharing the capacity axis."""
    from matplotlib.figure import Figure

    wise, grok, times = parts[model_wise.NAME], parts[grokking.NAME], parts[grok_times.NAME]
    col, name = column_name(wise.x), wise.x
    fig = Figure(figsize=(6.4, 9.0))
    top, middle, bottom = fig.subplots(3, 1, sharex=True)
    for metric, colour in (("test_error", "tab:blue"), ("train_error", "tab:orange")):
        means = sorted(_mean_by(wise.points, ["x"], metric).items())
        if means:
            top.plot(
                [k[0] for k, _ in means],
                [v for _, v in means],
                "o-",
                color=colour,
                label=metric.replace("_", " "),
                ms=3,
            )
    top.set_ylabel("error at the last step")
    top.legend(fontsize=7)
    heat = _mean_by(grok.points, [column_name(s) for s in grok.series[:1]] + ["x"], "test_error")
    if heat and grok.series and column_name(grok.series[0]) == col:
        widths = sorted({k[0] for k in heat})
        steps = sorted({k[1] for k in heat})
        grid = np.full((len(steps), len(widths)), np.nan)
        for (w, s), v in heat.items():
            grid[steps.index(s), widths.index(w)] = v
        mesh = middle.pcolormesh(widths, steps, grid, shading="nearest", cmap="viridis")
        middle.set_yscale("log")
        fig.colorbar(mesh, ax=middle, label="mean test error")
    middle.set_ylabel("step")
    table = times.table
    xs = np.asarray(table[col].to_pylist(), float)
    for metric, colour, label in (
        ("t_memorise", "tab:orange", "memorise (train)"),
        ("t_generalise", "tab:blue", "generalise (test)"),
    ):
        values = np.asarray(table[metric].to_pylist(), float)
        bottom.scatter(xs, values, color=colour, s=14, label=label)
    bottom.set_yscale("log")
    bottom.set_ylabel(f"first step, accuracy >= {spec.curves.grok_accuracy:g}")
    bottom.set_xlabel(name)
    bottom.legend(fontsize=7)
    if np.all(xs > 0) and xs.max() / xs.min() >= 10:
        bottom.set_xscale("log")
    fig.suptitle(f"{spec.name}: model-wise, epoch-wise and grokking on one axis", fontsize=9)
    fig.tight_layout()
    return fig


KIND = CurveKind(
    name=NAME,
    tiny=tiny.MODULAR,
    needs="modular-arithmetic data with a swept model field (e.g. model.width)",
    axis=axis,
    compute=compute,
    tables=lambda parts: {},
    figures=lambda parts, spec: {FIGURE: plot(parts, spec)},
    summary=told_nowhere,
    sections=told_nowhere,
    check=no_check,
    curve_set=False,
)
