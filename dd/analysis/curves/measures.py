"""The measures a spec asks for (``train.measures``, ``dd.models.measures``) against the
optimizer step: softmax collapse and the gradient-weight cosine (Prieto et al. 2025) would
otherwise show only as columns in ``dd query``.

Applies to trained sweeps whose every trial asks, through ``train.measures``, for a measure with
a scalar column; the data kind's own measures (modular arithmetic's progress measures, which
the grokking kinds draw) are not its. Vector columns (``layer_norms``, one norm per layer) are
left out: the LU kind reads them as the total weight norm. Per column and series (the swept
axes but the seed): a figure of the mean over seeds against the step with the seeds' 95%
interval clipped to the measure's declared range (``dd.analysis.curves.ranges``), and a table
of the final value (each trial's last evaluation that holds it), the largest value and the step
where each seed reached it (the median step, with the seeds' range), values as means with
their 95% interval over seeds. Pure functions of Arrow tables; matplotlib loads inside the
figure function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dd.analysis.curves import tiny
from dd.analysis.curves.base import CurveKind, Section, no_check, plain, series_order, trained
from dd.analysis.curves.ranges import mean_ci, metric_range
from dd.models.measures import registered
from dd.store.schema import column_name

NAME = "measures"


def asked(trial) -> tuple[str, ...]:
    """The scalar columns of the measures a trial's spec asks for in ``train.measures``, less
    those its data kind adds of its own."""
    if trial.train is None or not trial.train.measures:
        return ()
    own = set(trial.data.measures())
    names = [n.strip() for n in trial.train.measures.split(",") if n.strip() not in own]
    return tuple(
        column
        for measure in registered()
        if measure.name in names
        for column, (kind, _) in measure.columns.items()
        if not pa.types.is_list(kind) and not pa.types.is_nested(kind)
    )


def columns(spec) -> tuple[str, ...]:
    """The scalar measure columns every trial of the sweep asks for, in registration order."""
    if not trained(spec):
        return ()
    first, *rest = (asked(t) for t in spec.trials)
    return tuple(c for c in first if all(c in r for r in rest))


def axis(spec) -> str | None:
    return "step" if columns(spec) else None


@dataclass(frozen=True)
class Measures:
    """``points``: mean and interval over seeds per measure, series and step
    (curves/measures.parquet); ``table``: per measure and series, the final and largest values
    and the step of the largest (measures_extremes.parquet); ``series``: the series columns;
    ``measures``: the measure columns drawn."""

    points: pa.Table
    table: pa.Table
    series: tuple[str, ...]
    measures: tuple[str, ...]


def _interval(values: list[float], column: str) -> dict:
    mean, lo, hi = mean_ci(np.asarray(values, float), metric_range(column))
    return {"": mean, "_ci_low": lo, "_ci_high": hi}


def _by_series(rows: pa.Table, series: tuple[str, ...], column: str) -> dict:
    """{series key: {trial_id: (steps, values)}} of the rows that hold ``column``."""
    held = rows.filter(pa.array([v is not None for v in rows[column].to_pylist()]))
    held = held.sort_by([("trial_id", "ascending"), ("step", "ascending")])
    data = {c: held[c].to_pylist() for c in ("trial_id", "step", column, *series)}
    out: dict[tuple, dict[str, tuple[list, list]]] = {}
    for i, tid in enumerate(data["trial_id"]):
        key = tuple(plain(data[s][i]) for s in series)
        steps, values = out.setdefault(key, {}).setdefault(tid, ([], []))
        steps.append(data["step"][i])
        values.append(float(data[column][i]))
    return out


def compute(rows: pa.Table, spec, earlier) -> Measures | None:
    drawn = tuple(
        c for c in columns(spec) if c in rows.column_names and rows[c].null_count < len(rows)
    )
    if not drawn:
        return None
    series = tuple(column_name(a) for a in spec.axes if a != "seed")
    points, table = [], []
    for column in drawn:
        groups = _by_series(rows, series, column)
        for key in sorted(groups, key=series_order):
            trials = groups[key]
            named = dict(zip(series, key, strict=True)) | {"measure": column}
            at: dict[int, list[float]] = {}
            for steps, values in trials.values():
                for s, v in zip(steps, values, strict=True):
                    at.setdefault(s, []).append(v)
            for s in sorted(at):
                mean = _interval(at[s], column)
                points.append(
                    named
                    | {"step": s, "mean": mean[""], "ci_low": mean["_ci_low"]}
                    | {"ci_high": mean["_ci_high"], "n_seeds": len(at[s])}
                )
            finals = [values[-1] for _, values in trials.values()]
            peaks = [int(np.argmax(values)) for _, values in trials.values()]
            largest = [values[i] for (_, values), i in zip(trials.values(), peaks, strict=True)]
            steps = [steps[i] for (steps, _), i in zip(trials.values(), peaks, strict=True)]
            flat = {v for _, values in trials.values() for v in values}
            record = named | {"n_seeds": len(trials), "constant": len(flat) == 1}
            record |= {f"final{k}": v for k, v in _interval(finals, column).items()}
            record |= {f"largest{k}": v for k, v in _interval(largest, column).items()}
            record |= {
                "largest_step": float(np.median(steps)),
                "largest_step_low": min(steps),
                "largest_step_high": max(steps),
            }
            table.append(record)
    return Measures(pa.Table.from_pylist(points), pa.Table.from_pylist(table), series, drawn)


def _label(series: tuple[str, ...], record: dict) -> str:
    return ", ".join(f"{s}={record[s]}" for s in series) or "all trials"


def _value(record: dict, name: str) -> str:
    if record["n_seeds"] < 2:
        return f"{record[name]:.3g} (one seed)"
    low, high = record[f"{name}_ci_low"], record[f"{name}_ci_high"]
    dash = " to " if low < 0 else "-"  # "-0.5 to -0.4", not "-0.5--0.4"
    return f"{record[name]:.3g} (95% {low:.3g}{dash}{high:.3g})"


def summary(result: Measures) -> list[str]:
    """Per measure and series: the largest value and its step, then the final value."""
    lines = []
    for r in result.table.to_pylist():
        if r["constant"]:  # no step is "where the largest was": say it never moved
            value = f"{r['final']:.3g}"
            lines.append(
                f"{r['measure']}: {value} at every evaluation in {_label(result.series, r)}"
            )
            continue
        low, high = r["largest_step_low"], r["largest_step_high"]
        spread = f" (seeds {low:g}-{high:g})" if low != high else ""
        lines.append(
            f"{r['measure']}: largest {_value(r, 'largest')} at step {r['largest_step']:g}"
            f"{spread} in {_label(result.series, r)}; final {_value(r, 'final')}"
        )
    return lines


def sections(result: Measures) -> list[Section]:
    table = result.table
    return [
        Section(
            f"Measure {m}: final and largest value per series",
            table.filter(pa.array([x == m for x in table["measure"].to_pylist()])),
            landmark=False,
        )
        for m in result.measures
    ]


def plot_measure(result: Measures, column: str, spec):
    """The mean of one measure over seeds against the step, its 95% band, one curve per
    series; the step axis is logarithmic (evaluations are spaced so by default)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.subplots()
    groups: dict[tuple, list[dict]] = {}
    for r in result.points.to_pylist():
        if r["measure"] == column:
            groups.setdefault(tuple(r[s] for s in result.series), []).append(r)
    for key, group in sorted(groups.items(), key=lambda kv: series_order(kv[0])):
        step = np.asarray([r["step"] for r in group], float)
        mean = np.asarray([r["mean"] for r in group])
        label = _label(result.series, dict(zip(result.series, key, strict=True)))
        (line,) = ax.plot(step, mean, "o-", ms=3, label=label)
        low, high = [r["ci_low"] for r in group], [r["ci_high"] for r in group]
        ax.fill_between(step, low, high, color=line.get_color(), alpha=0.2, lw=0)
    if len(result.points) and min(result.points["step"].to_pylist()) > 0:
        ax.set_xscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(column)
    ax.legend(fontsize=7)
    fig.suptitle(f"{spec.name}: {column}, mean over seeds with their 95% interval", fontsize=9)
    fig.tight_layout()
    return fig


KIND = CurveKind(
    name=NAME,
    tiny=tiny.MEASURED,
    needs="a trained sweep asking for a scalar measure in train.measures "
    "(e.g. softmax_collapse, grad_weight_cosine)",
    axis=axis,
    compute=compute,
    tables=lambda r: {NAME: r.points, "measures_extremes": r.table},
    figures=lambda r, spec: {f"measure_{m}.png": plot_measure(r, m, spec) for m in r.measures},
    summary=summary,
    sections=sections,
    check=no_check,
    curve_set=False,
)
