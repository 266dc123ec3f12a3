"""Where a refinement target lies in the stored rows, and which axis values bracket it closer.

Pure functions of the rows: ``locate`` reads one target (``dd.plan.refine.Refine``) per series
(the other swept axes' values) as the curves define it (``dd.analysis.curves.landmarks``):

- threshold: the smallest x whose mean final ``threshold_metric`` is under its tolerance,
  bracketed by the largest stored x below it (not under, by definition);
- boundary: the smallest x where most seeds reach ``curves.grok_accuracy`` test accuracy
  at some evaluation within the budget, bracketed likewise;
- peak: the test-metric peak past the best x below the threshold (``peak_index``, ``is_peak``),
  bracketed by its neighbours.

New values bisect the bracket (both sides of a peak): the midpoint, the geometric mean on a
log scale, rounded for an integer axis. A bracket within ``resolution`` (or, on an integer
axis, between neighbouring integers) is resolved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dd.analysis.curves.base import PEAK_METRICS, defaults, final_rows, is_peak
from dd.analysis.curves.landmarks import interpolation_threshold, peak_index
from dd.plan.refine import Refine
from dd.store.schema import column_name


@dataclass(frozen=True)
class Located:
    """One target in one series: its bracket [lo, hi] (None where not located), the located
    x, the fewest seeds at the bracket's ends, the values that would narrow it and why not
    (``why``: None while it can narrow)."""

    series: tuple
    lo: float | None
    hi: float | None
    at: float | None
    seeds: int
    new: tuple
    why: str | None

    @property
    def width(self) -> float:
        return math.inf if self.lo is None else self.hi - self.lo


def locate(rows: pa.Table, spec, target: Refine) -> list[Located]:
    """``target`` in each series of ``rows`` (a sweep's current ok rows, every evaluation)."""
    x_col = column_name(target.axis)
    series_cols = [column_name(a) for a in spec.axes if a not in (target.axis, "seed")]
    final = final_rows(rows)
    if target.find == "boundary":
        source, metric, tol = _generalised(rows, spec), "not_generalised", 0.5
    else:
        source, (metric, tol) = final, defaults(spec)
    keys = _keys(source, series_cols)
    out = []
    for key in sorted(set(keys), key=str):
        here = np.array([k == key for k in keys])
        xs, means, seeds = _means(source, x_col, metric, here)
        if target.find == "peak":
            test = next((m for m in PEAK_METRICS if m in source.column_names), None)
            _, test_means, _ = _means(source, x_col, test, here)
            out.append(_peak(key, xs, means, tol, test_means, seeds, target))
        else:
            out.append(_bracket(key, xs, means, tol, seeds, target, metric))
    return out


def _generalised(rows: pa.Table, spec) -> pa.Table:
    """One row per trial: its config columns and ``not_generalised`` (1 when its test accuracy
    never reached ``curves.grok_accuracy``)."""
    reached = 1.0 - spec.curves.grok_accuracy
    final = final_rows(rows)
    best: dict[str, float] = {}
    for tid, err in zip(rows["trial_id"].to_pylist(), rows["test_error"].to_pylist(), strict=True):
        if err is not None:
            best[tid] = min(best.get(tid, math.inf), err)
    flags = [
        0.0 if best.get(t, math.inf) <= reached + 1e-12 else 1.0
        for t in final["trial_id"].to_pylist()
    ]
    return final.append_column("not_generalised", pa.array(flags))


def _keys(table: pa.Table, cols: list[str]) -> list[tuple]:
    present = [c for c in cols if c in table.column_names]
    if not present:
        return [()] * len(table)
    return list(zip(*(table[c].to_pylist() for c in present), strict=True))


def _means(table: pa.Table, x_col: str, metric: str | None, here: np.ndarray):
    """The stored xs of a series, the mean of ``metric`` over seeds at each, and its seeds."""
    x = table[x_col].to_numpy(zero_copy_only=False)[here].astype(float)
    xs = np.unique(x)
    if metric is None or metric not in table.column_names:
        return xs, np.full(len(xs), np.nan), np.zeros(len(xs), int)
    y = table[metric].to_numpy(zero_copy_only=False)[here].astype(float)
    means, seeds = [], []
    for xv in xs:
        vals = y[(x == xv) & ~np.isnan(y)]
        means.append(float(np.mean(vals)) if len(vals) else np.nan)
        seeds.append(len(vals))
    return xs, np.array(means), np.array(seeds)


def _bracket(key, xs, means, tol, seeds, target: Refine, metric: str) -> Located:
    at = interpolation_threshold(xs, means, tol)
    if at is None:
        why = f"not reached: no {target.axis} with mean {metric} under {tol:g}"
        return Located(key, None, None, None, 0, (), why)
    i = int(np.flatnonzero(xs == at)[0])
    if i == 0:
        why = f"at or below the smallest {target.axis} ({at:g}): widen the grid"
        return Located(key, None, at, at, int(seeds[0]), (), why)
    lo, hi = float(xs[i - 1]), at
    new, why = _narrow(lo, hi, target)
    return Located(key, lo, hi, at, int(min(seeds[i - 1], seeds[i])), new, why)


def _peak(key, xs, means, tol, test_means, seeds, target: Refine) -> Located:
    threshold = interpolation_threshold(xs, means, tol)
    i = peak_index(xs, test_means, threshold)
    if i is None or not is_peak(test_means, i):
        return Located(key, None, None, None, 0, (), "no peak inside the grid")
    lo, at, hi = float(xs[i - 1]), float(xs[i]), float(xs[i + 1])
    left, why_left = _narrow(lo, at, target)
    right, why_right = _narrow(at, hi, target)
    why = why_left if why_left and why_right else None
    return Located(key, lo, hi, at, int(seeds[i - 1 : i + 2].min()), left + right, why)


def _narrow(lo: float, hi: float, target: Refine) -> tuple[tuple, str | None]:
    """The value bisecting [lo, hi], or none and why: resolved to ``resolution``."""
    wide = hi / lo > target.resolution if target.scale == "log" else hi - lo > target.resolution
    mid = math.sqrt(lo * hi) if target.scale == "log" else (lo + hi) / 2
    mid = int(math.floor(mid + 0.5)) if target.integer else float(f"{mid:.6g}")
    if not wide or not lo < mid < hi:
        return (), f"resolved to {target.resolution:g}"
    return (mid,), None
