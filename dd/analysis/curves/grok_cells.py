"""Grokking times per cell of the swept axes (all but seed): a trial's times are single
numbers, so a cell's are the median over its seeds with the seeds' range, never a t-interval.

Columns: the cell's axes, ``n_seeds``, and per time (``t_memorise``, ``t_generalise``) its
median over seeds (a seed that never reaches the accuracy within the budget counts as later
than any that does; null when half or more never do), ``_after`` (the median over seeds of
the evaluation before each seed's time, a seed that never reaches it counting its last
evaluation: the median of the seeds' true crossings lies in (after, median], as each seed's
lies between its bracketing evaluations), ``_low`` / ``_high`` (the range over the seeds
that reach it; null with one seed) and ``_seeds`` (how many reach it).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dd.analysis.curves.base import series_order

TIMES = ("t_memorise", "t_generalise")
TOLD = {"t_memorise": "T_memorise", "t_generalise": "T_generalise"}


def grok_cells(grok: pa.Table, axes: list[str]) -> pa.Table:
    """One row per cell of ``axes`` (column names) of the per-trial grokking table."""
    cells: dict[tuple, list[dict]] = {}
    for r in grok.to_pylist():
        cells.setdefault(tuple(r[c] for c in axes), []).append(r)
    records = []
    for key in sorted(cells, key=series_order):
        trials = cells[key]
        record = {**dict(zip(axes, key, strict=True)), "n_seeds": len(trials)}
        for time in TIMES:
            values = np.array([np.nan if t[time] is None else t[time] for t in trials], float)
            reached = values[~np.isnan(values)]
            median = float(np.median(np.where(np.isnan(values), np.inf, values)))
            ranged = len(trials) >= 2 and len(reached) > 0
            after = [
                t["budget"] if v != v else t[f"{time}_after"]
                for t, v in zip(trials, values, strict=True)
            ]
            record[time] = median if np.isfinite(median) else None
            record[f"{time}_after"] = float(np.median(after)) if np.isfinite(median) else None
            record[f"{time}_low"] = float(reached.min()) if ranged else None
            record[f"{time}_high"] = float(reached.max()) if ranged else None
            record[f"{time}_seeds"] = len(reached)
        records.append(record)
    return pa.Table.from_pylist(records)


def cell_lines(cells: pa.Table, axes: list[str], most: int = 12) -> list[str]:
    """Each cell's median times with the seeds' range (none past ``most`` cells)."""
    rows = cells.to_pylist()
    if not rows or len(rows) > most:
        return [f"  {len(rows)} cells: see curves/grok_cells.parquet"] if rows else []
    lines = [
        "grokking times per cell (median over seeds, in (after, T]: between the evaluations "
        "that bracket it; the seeds' range):"
    ]
    for r in rows:
        where = ", ".join(
            f"{c}={r[c]:g}" if isinstance(r[c], float) else f"{c}={r[c]}" for c in axes
        )
        told = ", ".join(f"{TOLD[t]} {_time(r, t)}" for t in TIMES)
        lines.append(
            f"  {where or 'all'}: {told}" + ("; 1 seed: no range" if r["n_seeds"] == 1 else "")
        )
    return lines


def _time(r: dict, time: str) -> str:
    n, reached, median = r["n_seeds"], r[f"{time}_seeds"], r[time]
    value = "not within the budget" if median is None else f"{median:g}"
    if median is not None:
        value += f" in ({r[f'{time}_after']:g}, {median:g}]"
    if n < 2 or reached == 0:
        return value
    low, high = r[f"{time}_low"], r[f"{time}_high"]
    if reached < n:
        return f"{value} ({reached} of {n} seeds: {low:g}-{high:g})"
    return (
        f"{value} (all {n} seeds at {low:g})"
        if low == high
        else f"{value} (seeds {low:g}-{high:g})"
    )
