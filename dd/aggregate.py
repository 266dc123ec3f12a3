"""Turn a stored sweep into curve tables (Parquet), landmark tables and figures on disk."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure

from dd.curves import (
    PEAK_METRICS,
    CurveSet,
    EmcSet,
    current_rows,
    effective_table,
    emc_crossings,
    emc_curves,
    final_emc,
    sweep_curves,
    train_sizes,
)
from dd.errors import StoreError
from dd.grokking import grok_table, phase_axes, time_axis
from dd.plots import (
    plot_curves,
    plot_effective,
    plot_emc,
    plot_grok_times,
    plot_heatmap,
    plot_phases,
)
from dd.schema import column_name
from dd.spec import Spec, trial_id
from dd.states import load_stored_spec, stored_rows
from dd.store import SweepStore
from dd.store_paths import StorePath, atomic_write_bytes, write_parquet


@dataclass(frozen=True)
class Aggregate:
    """What ``write_curves`` produced."""

    curves: list[CurveSet]
    left_out: int
    figures: list[StorePath]
    tables: list[StorePath]
    grok: pa.Table | None = None  # per-trial grokking times and phases (modular sweeps)
    planned: int = 0  # the spec's trials
    missing: int = 0  # of them, those with no stored rows (not run, failed, quarantined)
    emc: EmcSet | None = None  # effective model complexity (sweeps over n_train)
    crossings: tuple[dict, ...] = ()  # where the EMC reaches each model-wise curve's n_train


def write_curves(
    store: SweepStore, spec: Spec | None = None, table: pa.Table | None = None
) -> Aggregate:
    """Aggregate the sweep's stored rows (``table``, if already read); write curves/,
    figures/ beside them."""
    spec = spec or load_stored_spec(store)
    table = table if table is not None else stored_rows(store)
    planned = {trial_id(t) for t in spec.trials}
    missing = len(planned - set(table["trial_id"].unique().to_pylist()))
    curve_sets, left_out = sweep_curves(table, spec)
    if not any(len(c.points) for c in curve_sets):
        if left_out:  # every stored trial diverged: a result, told by describe()
            return Aggregate(
                curves=[],
                left_out=left_out,
                figures=[],
                tables=[],
                planned=len(planned),
                missing=missing,
            )
        raise StoreError(
            f"{store.dir}: none of the stored rows belong to the current spec's "
            "trials; run 'dd sweep' with the spec"
        )
    figures, tables = [], []
    for curves in curve_sets:
        for suffix, data in (
            ("", curves.points),
            ("_seeds", curves.per_seed),
            ("_landmarks", curves.landmarks),
        ):
            path = store.curve_path(f"{curves.kind}{suffix}")
            write_parquet(path, data)
            tables.append(path)
        figures.append(save_png(plot_curves(curves, spec), store, f"{curves.kind}.png"))
        effective = effective_table(curves) if curves.kind == "model_wise" else None
        if effective is not None:
            path = store.curve_path("effective_parameters")
            write_parquet(path, effective)
            tables.append(path)
            figures.append(
                save_png(plot_effective(effective, curves, spec), store, "effective_parameters.png")
            )
        heatmap = plot_heatmap(curves, spec, "test_error")
        if heatmap is not None:
            figures.append(save_png(heatmap, store, "heatmap_test_error.png"))
    grok = None
    if any(c.kind == "grokking" for c in curve_sets):
        grok, more_figures, more_tables = _write_grokking(store, spec, table)
        figures += more_figures
        tables += more_tables
    emc, crossings = _write_emc(store, spec, table, curve_sets, figures, tables)
    return Aggregate(
        curves=curve_sets,
        left_out=left_out,
        figures=figures,
        tables=tables,
        grok=grok,
        planned=len(planned),
        missing=missing,
        emc=emc,
        crossings=crossings,
    )


def _write_emc(
    store: SweepStore,
    spec: Spec,
    table: pa.Table,
    curve_sets: list[CurveSet],
    figures: list[StorePath],
    tables: list[StorePath],
):
    """emc.parquet and emc_grid.parquet, the EMC figure, and where the EMC reaches each
    model-wise curve's n_train (sweeps over the training-set size; else nothing)."""
    rows, _ = current_rows(table, spec)
    emc = emc_curves(rows, spec)
    if emc is None:
        return None, ()
    for name, data in (("emc", emc.table), ("emc_grid", emc.grid)):
        path = store.curve_path(name)
        write_parquet(path, data)
        tables.append(path)
    figures.append(save_png(plot_emc(emc, spec), store, "emc.png"))
    sizes = train_sizes(rows, emc.axis)
    crossings = tuple(c for curves in curve_sets for c in emc_crossings(emc, curves, sizes))
    return emc, crossings


def _write_grokking(store: SweepStore, spec: Spec, table: pa.Table):
    """grok_times.parquet (per trial) and the times and phase figures."""
    rows, _ = current_rows(table, spec)
    grok = grok_table(rows, spec)
    path = store.curve_path("grok_times")
    write_parquet(path, grok)
    figures = []
    axis = time_axis(spec)
    if axis is not None:
        figures.append(save_png(plot_grok_times(grok, spec, axis), store, "grok_times.png"))
    axes = phase_axes(spec)
    if axes is not None:
        figures.append(save_png(plot_phases(grok, spec, axes), store, "phases.png"))
    return grok, figures, [path]


def save_png(fig: Figure, store: SweepStore, name: str) -> StorePath:
    """Write ``fig`` as ``<sweep>/figures/<name>`` (local or remote, atomically)."""
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=120)
    path = store.figure_path(name)
    atomic_write_bytes(path, image.getvalue())
    return path


def describe(aggregate: Aggregate) -> list[str]:
    """One line per located threshold and peak, for the terminal."""
    lines = []
    for curves in aggregate.curves:
        if curves.kind == "grokking":  # told by the grokking lines below
            continue
        series_cols = [column_name(s) for s in curves.series]
        for mark in curves.landmarks.to_pylist():
            where = " ".join(f"{c}={mark[c]}" for c in series_cols)
            peaks = ", ".join(
                f"{m} peak at {mark[f'{m}_peak_x']:g} ({mark[f'{m}_peak']:.4g})"
                for m in PEAK_METRICS
                if mark.get(f"{m}_peak_x") is not None
            )
            thr = mark["threshold_x"]
            landmark = "EMC" if curves.kind == "sample_wise" else "threshold"
            lines.append(
                f"{curves.kind} {where}".rstrip()
                + f": {landmark} "
                + (f"at {curves.x}={thr:g}" if thr is not None else "not reached")
                + (f"; {peaks}" if peaks else "")
            )
    if aggregate.grok is not None:
        lines += _describe_grokking(aggregate.grok)
    if not aggregate.curves:
        lines.append(
            f"no curve: all {aggregate.left_out} stored trials diverged "
            "('dd report' lists them with their configs)"
        )
    elif aggregate.left_out:
        lines.append(f"{aggregate.left_out} trials left out (diverged)")
    if aggregate.emc is not None:
        lines += _describe_emc(aggregate)
    if aggregate.missing:
        lines.append(
            f"incomplete: {aggregate.missing} of {aggregate.planned} planned trials "
            "missing (not run, failed or unreadable; 'dd status' counts them); the "
            "curves are drawn without them"
        )
    return lines


def _describe_grokking(grok: pa.Table) -> list[str]:
    t = grok.to_pydict()
    done = [(m, g) for m, g in zip(t["t_memorise"], t["t_generalise"], strict=True) if g == g]
    counts = {p: t["phase"].count(p) for p in dict.fromkeys(t["phase"])}
    line = f"grokking: {len(done)} of {len(grok)} trials generalise within the budget" + (
        f" (median T_memorise {np.median([m for m, _ in done]):g}, T_generalise "
        f"{np.median([g for _, g in done]):g} steps)"
        if done
        else ""
    )
    return [line, "phases: " + ", ".join(f"{p} {n}" for p, n in counts.items())]


def _describe_emc(aggregate: Aggregate) -> list[str]:
    """The final EMC of each model (few), and where it reaches each model-wise n_train."""
    emc = aggregate.emc
    series_cols = [column_name(a) for a in emc.series]
    final = final_emc(emc).to_pylist()
    lines = [f"EMC (largest n_train with mean {emc.metric} < {emc.tol:g}; seeds' range):"]
    shown = final if len(final) <= 12 else []
    for r in shown:
        where = " ".join(f"{c}={r[c]}" for c in series_cols)
        value = (
            "below the smallest n_train"
            if r["emc"] is None
            else (
                f"{'>= ' if r['censored'] else ''}{r['emc']:g} [{_g(r['emc_low'])}, "
                f"{_g(r['emc_high'])}]"
            )
        )
        lines.append(
            f"  {where or 'the model'}".rstrip()
            + ("" if "epoch" not in r else f" at epoch {r['epoch']}")
            + f": {value}"
        )
    if not shown:
        lines.append(f"  {len(final)} models: see curves/emc.parquet")
    for c in aggregate.crossings:
        peaks = ", ".join(
            f"{m} peak at {c[f'{m}_peak_x']:g}"
            for m in PEAK_METRICS
            if c.get(f"{m}_peak_x") is not None
        )
        cross = "never" if c["emc_cross_x"] is None else f"at {c['x']}={c['emc_cross_x']:g}"
        threshold = "none" if c["threshold_x"] is None else f"{c['threshold_x']:g}"
        lines.append(
            f"  EMC reaches n_train={c['n_train']} {cross}; model-wise threshold "
            f"{threshold}" + (f"; {peaks}" if peaks else "")
        )
    return lines


def _g(value) -> str:
    return "below" if value is None else f"{value:g}"
