"""Omnigrok's "LU" (Liu et al. 2023, "Omnigrok: grokking beyond algorithmic data"): train and
test loss against the total weight norm at the end of training, one point per initialisation
scale. Their claim: the training loss is low over a wide range of norms (the L) while the test
loss is a U, lowest at a "Goldilocks" norm; a large initial norm fits the training set first
and generalises only once weight decay has brought the norm down (late, if at all).

Applies to trained sweeps over ``model.init_scale`` that store ``layer_norms``
(``train.measures: layer_norms``). A trial's weight norm is sqrt(sum of its layers' squared
norms) at its last evaluation; each point is the mean over seeds with the seeds' 95% interval
(``mean_ci``, clipped to the metric's range), one curve per combination of the other swept
axes. Each trial's times to reach ``curves.phase_accuracy`` train / test accuracy
(classification) say whether the large scales memorise first and generalise later.
Pure functions of Arrow tables; matplotlib loads inside the figure function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dd.analysis.curves import tiny
from dd.analysis.curves.base import CurveKind, Section, defaults, no_check, plain, series_order
from dd.analysis.curves.grok_times import bracket
from dd.analysis.curves.ranges import mean_ci, metric_range
from dd.models.measures import requested
from dd.store.schema import column_name

NAME = "lu"
AXIS = "model.init_scale"
NORM = "weight_norm"
LOSSES = ("train_loss", "test_loss", "train_error", "test_error", "train_mse", "test_mse")


def axis(spec) -> str | None:
    """``model.init_scale`` where the sweep varies it and measures ``layer_norms``."""
    if AXIS not in spec.axes or spec.trials[0].model.SECTION != "train":
        return None
    return AXIS if all("layer_norms" in requested(t) for t in spec.trials) else None


def total_norm(layer_norms) -> float:
    """The l2 norm of all parameters from the per-layer norms: sqrt(sum of their squares)."""
    return float(np.sqrt(np.sum(np.square(np.asarray(layer_norms, float)))))


@dataclass(frozen=True)
class LU:
    """``trials``: one row per trial at its last evaluation (curves/lu.parquet); ``points``: the
    means over seeds per series and init scale (curves/lu_points.parquet); ``series``: the
    series columns; ``goldilocks``: per series, where the test loss is lowest and whether it
    is a U (lu_goldilocks.parquet); ``fit_tol``: (metric, tol) the L is read with."""

    trials: pa.Table
    points: pa.Table
    series: tuple[str, ...]
    goldilocks: pa.Table
    fit_tol: tuple[str, float]


def trial_table(rows: pa.Table, spec) -> pa.Table:
    """Each trial's last evaluation: its swept values, weight norm, losses and errors, and
    the steps at which its train / test accuracy first reach ``curves.phase_accuracy`` (NaN if
    never; ``_after`` the evaluation before it: the crossing lies in (after, step])."""
    order = rows.sort_by([("trial_id", "ascending"), ("step", "ascending")])
    ids = np.asarray(order["trial_id"].to_pylist())
    metrics = [m for m in LOSSES if m in order.column_names and order[m].null_count < len(order)]
    cols = {
        c: order[c].to_numpy(zero_copy_only=False)
        for c in dict.fromkeys(["step", *metrics, *(column_name(a) for a in spec.axes)])
    }
    norms = order["layer_norms"].to_pylist()
    level = spec.curves.phase_accuracy
    records = []
    for tid in dict.fromkeys(ids):
        at = np.flatnonzero(ids == tid)
        last = at[-1]
        record = {
            "trial_id": tid,
            **{column_name(a): plain(cols[column_name(a)][last]) for a in spec.axes},
        }
        record[NORM] = total_norm(norms[last]) if norms[last] is not None else float("nan")
        record |= {m: float(cols[m][last]) for m in metrics}
        for split in ("train", "test"):
            if f"{split}_error" in metrics:
                after, first = bracket(cols["step"][at], 1 - cols[f"{split}_error"][at], level)
                record |= {f"t_{split}": first, f"t_{split}_after": after}
        record["budget"] = float(cols["step"][last])
        records.append(record)
    return pa.Table.from_pylist(records)


def points_table(trials: pa.Table, series: tuple[str, ...]) -> pa.Table:
    """Mean and 95% interval over seeds of the norm and each metric, per series and scale."""
    x = column_name(AXIS)
    metrics = [NORM, *(m for m in LOSSES if m in trials.column_names)]
    groups: dict[tuple, list[int]] = {}
    rows = trials.to_pylist()
    for i, r in enumerate(rows):
        groups.setdefault((*(r[s] for s in series), r[x]), []).append(i)
    records = []
    for key in sorted(groups, key=series_order):
        record = dict(zip((*series, x), key, strict=True)) | {"n_seeds": len(groups[key])}
        for m in metrics:
            values = np.asarray([rows[i][m] for i in groups[key]], float)
            bounds = (0.0, np.inf) if m == NORM else metric_range(m)
            mean, lo, hi = mean_ci(values, bounds)
            record |= {m: mean, f"{m}_ci_low": lo, f"{m}_ci_high": hi}
        records.append(record)
    return pa.Table.from_pylist(records)


def goldilocks(points: pa.Table, series: tuple[str, ...], test: str) -> pa.Table:
    """Per series, the scale (and norm) of the lowest mean ``test`` metric and whether the test
    metric is a U around it: ``u`` is "yes" when it is not at an edge of the grid and both
    edges lie above it beyond the seeds' intervals (edge ci_low > minimum's ci_high), "within
    the seed noise" when the minimum is inside but an edge's interval overlaps it, "no" at an
    edge, "one seed" when no interval can be told."""
    x = column_name(AXIS)
    rows = points.to_pylist()
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[s] for s in series), []).append(r)
    records = []
    for key, group in groups.items():
        group = sorted(group, key=lambda r: r[x])
        mean = np.asarray([r[test] for r in group], float)
        i = int(np.nanargmin(mean))
        best, ends = group[i], (group[0], group[-1])
        if not 0 < i < len(group) - 1:
            u = "no"
        elif min(r["n_seeds"] for r in group) < 2:
            u = "one seed"
        elif all(e[f"{test}_ci_low"] > best[f"{test}_ci_high"] for e in ends):
            u = "yes"
        else:
            u = "within the seed noise"
        records.append(
            dict(zip(series, key, strict=True))
            | {
                "metric": test,
                "init_scale": best[x],
                NORM: best[NORM],
                f"{NORM}_ci_low": best[f"{NORM}_ci_low"],
                f"{NORM}_ci_high": best[f"{NORM}_ci_high"],
                "value": best[test],
                "ci_low": best[f"{test}_ci_low"],
                "ci_high": best[f"{test}_ci_high"],
                "first_value": ends[0][test],
                "last_value": ends[1][test],
                "u": u,
            }
        )
    return pa.Table.from_pylist(records)


def compute(rows: pa.Table, spec, earlier) -> LU | None:
    if "layer_norms" not in rows.column_names or rows["layer_norms"].null_count == len(rows):
        return None
    trials = trial_table(rows, spec)
    series = tuple(column_name(a) for a in spec.axes if a not in (AXIS, "seed"))
    points = points_table(trials, series)
    test = "test_loss" if "test_loss" in points.column_names else "test_mse"
    metric, tol = defaults(spec)
    return LU(trials, points, series, goldilocks(points, series, test), (metric, tol))


def _label(series: tuple[str, ...], key: tuple) -> str:
    return ", ".join(f"{s}={v}" for s, v in zip(series, key, strict=True)) or "all"


def summary(result: LU) -> list[str]:
    """Per series: where the test loss is lowest (the Goldilocks norm) and whether it is a U;
    the norms over which the training set is fit (the L); the median times per scale."""
    lines = []
    x = column_name(AXIS)
    metric, tol = result.fit_tol
    points = result.points.to_pylist()
    for g in result.goldilocks.to_pylist():
        key = tuple(g[s] for s in result.series)
        lines.append(
            f"LU ({_label(result.series, key)}): {g['metric']} lowest at "
            f"init_scale={g['init_scale']:g}, weight norm {g[NORM]:.3g} "
            f"(95% {g[f'{NORM}_ci_low']:.3g}-{g[f'{NORM}_ci_high']:.3g}):"
            f" {g['value']:.3g} (95% {g['ci_low']:.3g}-{g['ci_high']:.3g}) against"
            f" {g['first_value']:.3g} at the smallest and {g['last_value']:.3g} at the largest"
            f" scale; a U: {g['u']}"
        )
        mine = [p for p in points if tuple(p[s] for s in result.series) == key]
        if metric in result.points.column_names:
            fit = [p for p in mine if p[metric] < tol]
            lines.append(
                f"LU ({_label(result.series, key)}): training set fit ({metric} < {tol:g}) at "
                + (
                    ", ".join(f"init_scale={p[x]:g} (norm {p[NORM]:.3g})" for p in fit)
                    if fit
                    else "no scale"
                )
                + f" of {len(mine)}"
            )
    if "t_test" in result.trials.column_names:
        lines.extend(_time_lines(result))
    return lines


def _time_lines(result: LU) -> list[str]:
    """The median steps to the accuracy level per init scale (NaN: not within the budget)."""
    t = result.trials.to_pydict()
    x = column_name(AXIS)
    parts = []
    for scale in sorted(set(t[x])):
        at = [i for i, v in enumerate(t[x]) if v == scale]

        def median(col, at=at):
            values = [t[col][i] for i in at]
            reached = [v for v in values if v == v]
            if len(reached) < len(values):
                return f"{len(reached)}/{len(values)} reached"
            return f"{np.median(reached):g}"

        parts.append(f"init_scale={scale:g}: train {median('t_train')}, test {median('t_test')}")
    return ["LU steps to the phase accuracy (median over trials): " + "; ".join(parts)]


def plot_lu(result: LU, spec):
    """Loss (and error) against the weight norm at the end of training, train and test, one
    point per init scale with both intervals over seeds, each labelled with its scale."""
    from matplotlib.figure import Figure

    x = column_name(AXIS)
    panels = [("train_loss", "test_loss"), ("train_error", "test_error")]
    panels = [p for p in panels if p[1] in result.points.column_names] or [
        ("train_mse", "test_mse")
    ]
    fig = Figure(figsize=(5.2 * len(panels), 4.2))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    groups: dict[tuple, list[dict]] = {}
    for r in result.points.to_pylist():
        groups.setdefault(tuple(r[s] for s in result.series), []).append(r)
    for ax, pair in zip(axes, panels, strict=True):
        for key, group in sorted(groups.items(), key=lambda kv: series_order(kv[0])):
            group = sorted(group, key=lambda r: r[NORM])
            norm = np.asarray([r[NORM] for r in group])
            xerr = [
                norm - [r[f"{NORM}_ci_low"] for r in group],
                [r[f"{NORM}_ci_high"] for r in group] - norm,
            ]
            for metric, style in zip(pair, ("--", "-"), strict=True):
                if metric not in result.points.column_names:
                    continue
                mean = np.asarray([r[metric] for r in group])
                yerr = [
                    mean - [r[f"{metric}_ci_low"] for r in group],
                    [r[f"{metric}_ci_high"] for r in group] - mean,
                ]
                suffix = f" ({_label(result.series, key)})" if result.series else ""
                ax.errorbar(
                    norm,
                    mean,
                    yerr=yerr,
                    xerr=xerr,
                    fmt="o" + style,
                    ms=4,
                    capsize=2,
                    label=metric + suffix,
                )
            for r in group:
                ax.annotate(
                    f"{r[x]:g}",
                    (r[NORM], r[pair[1]]),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.set_xscale("log")
        if pair[1] != "test_error":
            ax.set_yscale("log")
        ax.set_xlabel("total weight norm at the end of training")
        ax.set_ylabel(pair[1].split("_", 1)[1])
        ax.legend(fontsize=7)
    fig.suptitle(
        f"{spec.name}: the LU (Liu et al. 2023); points labelled by init_scale,\n"
        "mean over seeds with their 95% intervals",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


KIND = CurveKind(
    name=NAME,
    tiny=tiny.OMNIGROK,
    needs="a trained sweep over model.init_scale measuring layer_norms (train.measures)",
    axis=axis,
    compute=compute,
    tables=lambda r: {NAME: r.trials, "lu_points": r.points, "lu_goldilocks": r.goldilocks},
    figures=lambda r, spec: {"lu.png": plot_lu(r, spec)},
    summary=summary,
    sections=lambda r: [
        Section("LU: the Goldilocks weight norm (Omnigrok)", r.goldilocks, True),
        Section("LU: losses against the weight norm per init scale", r.points, landmark=False),
    ],
    check=no_check,
    curve_set=False,
)
