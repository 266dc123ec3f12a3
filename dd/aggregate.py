"""Turn a stored sweep into curve tables (Parquet), landmark tables and figures on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


import pyarrow.parquet as pq

from dd.curves import PEAK_METRICS, CurveSet, sweep_curves
from dd.errors import StoreError
from dd.plots import plot_curves, plot_heatmap
from dd.schema import column_name
from dd.spec import Spec, parse_spec
from dd.store import SweepStore


@dataclass(frozen=True)
class Aggregate:
    """What ``write_curves`` produced."""

    curves: list[CurveSet]
    left_out: int
    figures: list[Path]
    tables: list[Path]


def load_stored_spec(store: SweepStore) -> Spec:
    """The spec saved beside the results: the sweep's current plan."""
    return parse_spec(store.read_spec_mapping())


def write_curves(store: SweepStore, spec: Spec | None = None) -> Aggregate:
    """Aggregate the sweep's stored rows; write curves/, figures/ beside them."""
    spec = spec or load_stored_spec(store)
    table = store.read_results()
    if table is None:
        raise StoreError(f"{store.dir}: no results stored yet; run 'dd sweep' first")
    curve_sets, left_out = sweep_curves(table, spec)
    if not any(len(c.points) for c in curve_sets):
        raise StoreError(f"{store.dir}: none of the stored rows belong to the current spec's ok "
                         f"trials ({left_out} left out); run 'dd sweep' with the spec")
    figures, tables = [], []
    for curves in curve_sets:
        for suffix, data in (("", curves.points), ("_seeds", curves.per_seed),
                             ("_landmarks", curves.landmarks)):
            path = store.dir / "curves" / f"{curves.kind}{suffix}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(data, path)
            tables.append(path)
        figures.append(plot_curves(curves, spec, store.dir / "figures"))
        heatmap = plot_heatmap(curves, spec, store.dir / "figures")
        if heatmap is not None:
            figures.append(heatmap)
    return Aggregate(curves=curve_sets, left_out=left_out, figures=figures, tables=tables)


def describe(aggregate: Aggregate) -> list[str]:
    """One line per located threshold and peak, for the terminal."""
    lines = []
    for curves in aggregate.curves:
        series_cols = [column_name(s) for s in curves.series]
        for mark in curves.landmarks.to_pylist():
            where = " ".join(f"{c}={mark[c]}" for c in series_cols)
            peaks = ", ".join(f"{m} peak at {mark[f'{m}_peak_x']:g} ({mark[f'{m}_peak']:.4g})"
                              for m in PEAK_METRICS if mark.get(f"{m}_peak_x") is not None)
            thr = mark["threshold_x"]
            lines.append(f"{curves.kind} {where}".rstrip() + ": threshold "
                         + (f"at {curves.x}={thr:g}" if thr is not None else "not reached")
                         + (f"; {peaks}" if peaks else ""))
    if aggregate.left_out:
        lines.append(f"{aggregate.left_out} trials left out (diverged or failed)")
    return lines
