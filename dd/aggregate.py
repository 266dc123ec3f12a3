"""Turn a stored sweep into curve tables (Parquet), landmark tables and figures on disk."""

from __future__ import annotations

from dataclasses import dataclass


import numpy as np
import pyarrow as pa

from dd.curves import PEAK_METRICS, CurveSet, current_rows, effective_table, sweep_curves
from dd.grokking import grok_table, phase_axes, time_axis
from dd.errors import StoreError
from dd.plots import (plot_curves, plot_effective, plot_grok_times, plot_heatmap,
                      plot_phases)
from dd.schema import column_name
from dd.spec import Spec, parse_spec, trial_id
from dd.store import StorePath, SweepStore, write_parquet


@dataclass(frozen=True)
class Aggregate:
    """What ``write_curves`` produced."""

    curves: list[CurveSet]
    left_out: int
    figures: list[StorePath]
    tables: list[StorePath]
    grok: pa.Table | None = None  # per-trial grokking times and phases (modular sweeps)


def load_stored_spec(store: SweepStore) -> Spec:
    """The spec saved beside the results: the sweep's current plan."""
    return parse_spec(store.read_spec_mapping())


def stored_rows(store: SweepStore) -> pa.Table:
    """Every stored row of the sweep; a StoreError when nothing is stored yet."""
    table = store.read_results()
    if table is None:
        raise StoreError(f"{store.dir}: no results stored yet; run 'dd sweep' first")
    return table


def trial_states(store: SweepStore, spec: Spec, stored: set[str]) -> dict[str, set[str]]:
    """The spec's trial ids by state (``planned``, ``done``, ``missing``, ``failed``) and the
    ``earlier`` stored ids that the current spec no longer plans; ``stored``: the stored ids."""
    planned = {trial_id(t) for t in spec.trials}
    failed = {tid for f in store.failures() for tid in f["trial_ids"]} & planned - stored
    return {"planned": planned, "done": planned & stored,
            "missing": planned - stored - failed, "failed": failed,
            "earlier": stored - planned}


def write_curves(store: SweepStore, spec: Spec | None = None,
                 table: pa.Table | None = None) -> Aggregate:
    """Aggregate the sweep's stored rows (``table``, if already read); write curves/,
    figures/ beside them."""
    spec = spec or load_stored_spec(store)
    table = table if table is not None else stored_rows(store)
    curve_sets, left_out = sweep_curves(table, spec)
    if not any(len(c.points) for c in curve_sets):
        raise StoreError(f"{store.dir}: none of the stored rows belong to the current spec's ok "
                         f"trials ({left_out} left out); run 'dd sweep' with the spec")
    figures, tables = [], []
    for curves in curve_sets:
        for suffix, data in (("", curves.points), ("_seeds", curves.per_seed),
                             ("_landmarks", curves.landmarks)):
            path = store.dir / "curves" / f"{curves.kind}{suffix}.parquet"
            write_parquet(path, data)
            tables.append(path)
        figures.append(plot_curves(curves, spec, store.dir / "figures"))
        effective = effective_table(curves) if curves.kind == "model_wise" else None
        if effective is not None:
            path = store.dir / "curves" / "effective_parameters.parquet"
            write_parquet(path, effective)
            tables.append(path)
            figures.append(plot_effective(effective, curves, spec, store.dir / "figures"))
        heatmap = plot_heatmap(curves, spec, store.dir / "figures")
        if heatmap is not None:
            figures.append(heatmap)
    grok = None
    if any(c.kind == "grokking" for c in curve_sets):
        grok, more_figures, more_tables = _write_grokking(store, spec, table)
        figures += more_figures
        tables += more_tables
    return Aggregate(curves=curve_sets, left_out=left_out, figures=figures, tables=tables,
                     grok=grok)


def _write_grokking(store: SweepStore, spec: Spec, table: pa.Table):
    """grok_times.parquet (per trial) and the times and phase figures."""
    rows, _ = current_rows(table, spec)
    grok = grok_table(rows, spec)
    path = store.dir / "curves" / "grok_times.parquet"
    write_parquet(path, grok)
    figures = []
    axis = time_axis(spec)
    if axis is not None:
        figures.append(plot_grok_times(grok, spec, axis, store.dir / "figures"))
    axes = phase_axes(spec)
    if axes is not None:
        figures.append(plot_phases(grok, spec, axes, store.dir / "figures"))
    return grok, figures, [path]


def describe(aggregate: Aggregate) -> list[str]:
    """One line per located threshold and peak, for the terminal."""
    lines = []
    for curves in aggregate.curves:
        if curves.kind == "grokking":  # told by the grokking lines below
            continue
        series_cols = [column_name(s) for s in curves.series]
        for mark in curves.landmarks.to_pylist():
            where = " ".join(f"{c}={mark[c]}" for c in series_cols)
            peaks = ", ".join(f"{m} peak at {mark[f'{m}_peak_x']:g} ({mark[f'{m}_peak']:.4g})"
                              for m in PEAK_METRICS if mark.get(f"{m}_peak_x") is not None)
            thr = mark["threshold_x"]
            lines.append(f"{curves.kind} {where}".rstrip() + ": threshold "
                         + (f"at {curves.x}={thr:g}" if thr is not None else "not reached")
                         + (f"; {peaks}" if peaks else ""))
    if aggregate.grok is not None:
        lines += _describe_grokking(aggregate.grok)
    if aggregate.left_out:
        lines.append(f"{aggregate.left_out} trials left out (diverged or failed)")
    return lines


def _describe_grokking(grok: pa.Table) -> list[str]:
    t = grok.to_pydict()
    done = [(m, g) for m, g in zip(t["t_memorise"], t["t_generalise"]) if g == g]
    counts = {p: t["phase"].count(p) for p in dict.fromkeys(t["phase"])}
    line = (f"grokking: {len(done)} of {len(grok)} trials generalise within the budget"
            + (f" (median T_memorise {np.median([m for m, _ in done]):g}, T_generalise "
               f"{np.median([g for _, g in done]):g} steps)" if done else ""))
    return [line, "phases: " + ", ".join(f"{p} {n}" for p, n in counts.items())]
