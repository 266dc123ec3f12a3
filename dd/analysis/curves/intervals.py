"""Each located landmark's interval over seeds and its significance, beside it in the
landmark table (the summary lines and the report read them from there).

- ``n_seeds``: the seeds in the series. With fewer than 2 every interval and significance
  column is null: one seed claims nothing statistical.
- ``curve_seeds``: the seeds stored at every x of the series, the only ones whose own
  landmark is read: a seed that refinement added at a few x values around a peak has no whole
  curve, and its landmark read off those few would be wrong (a threshold at its smallest
  stored x). With fewer than 2 the range below is null.
- ``threshold_x_low`` / ``threshold_x_high``: the range of the seeds' own landmarks (each
  seed's threshold, or EMC, read off its own curve by the kind's landmark rule), over the
  ``threshold_seeds`` of the ``curve_seeds`` that reach one; a seed that never does is
  counted out, not guessed. A range, not a t-interval: a landmark is one of the swept x
  values, and with 2-5 seeds a t-interval over them would claim a resolution the grid does
  not have.
- ``<metric>_peak_ci_low`` / ``_ci_high``: the 95% Student-t interval of the seeds' values
  at the peak x, clipped to the metric's range (the curve's own band there), over every seed
  stored at that x.
- ``<metric>_peak_significant``: the verdict's test (``dd.analysis.curves.verdict.locate``):
  the paired rise over the best smaller x and the fall to the largest x both above zero at
  95% over seeds, each paired over the seeds stored at both x values; null when fewer than 2
  seeds hold both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pyarrow as pa

from dd.analysis.curves.base import PEAK_METRICS, CurveSet, defaults
from dd.analysis.curves.verdict import locate
from dd.store.schema import column_name

Landmark = Callable[[np.ndarray, np.ndarray, float], float | None]


def with_intervals(curves: CurveSet, spec, landmark: Landmark) -> CurveSet:
    """``curves`` with its landmark table widened by the interval and significance columns
    (the existing columns kept, in their order)."""
    metric, tol = defaults(spec)
    cols = [column_name(s) for s in curves.series]
    seeds: dict[tuple, dict[str, dict[float, dict[int, float]]]] = {}
    for r in curves.per_seed.to_pylist():
        by_x = seeds.setdefault(tuple(r[c] for c in cols), {}).setdefault(r["metric"], {})
        by_x.setdefault(r["x"], {})[r["seed"]] = r["value"]
    points = {
        (tuple(p[c] for c in cols), p["metric"], p["x"]): p for p in curves.points.to_pylist()
    }
    marks = []
    for mark in curves.landmarks.to_pylist():
        mine = seeds.get(tuple(mark[c] for c in cols), {})
        marks.append(_widened(mark, cols, mine, points, landmark, metric, tol))
    return replace(curves, landmarks=pa.Table.from_pylist(marks))


def _widened(mark: dict, cols: list, mine: dict, points: dict, landmark, metric, tol) -> dict:
    key = tuple(mark[c] for c in cols)
    every = sorted({s for by_x in mine.values() for at in by_x.values() for s in at})
    tested = len(every) >= 2
    out = {c: mark[c] for c in cols}
    out["n_seeds"] = len(every)
    out["threshold_x"] = mark["threshold_x"]
    by_x = mine.get(metric, {})
    whole = whole_seeds(by_x)
    out["curve_seeds"] = len(whole)
    own = [own_landmark(by_x, seed, landmark, tol) for seed in whole]
    reached = [x for x in own if x is not None]
    ranged = tested and len(whole) >= 2 and reached
    out["threshold_x_low"] = min(reached) if ranged else None
    out["threshold_x_high"] = max(reached) if ranged else None
    out["threshold_seeds"] = len(reached)
    for m in PEAK_METRICS:
        if f"{m}_peak_x" not in mark:
            continue
        peak_x = mark[f"{m}_peak_x"]
        out[f"{m}_peak_x"], out[f"{m}_peak"] = peak_x, mark[f"{m}_peak"]
        at = points.get((key, m, peak_x))
        band = at is not None and at["n_seeds"] >= 2
        out[f"{m}_peak_ci_low"] = at["ci_low"] if band else None
        out[f"{m}_peak_ci_high"] = at["ci_high"] if band else None
        by_x = mine.get(m, {})
        xs = sorted(by_x)
        ys = np.array([points[key, m, x]["mean"] for x in xs], float)
        peak = locate(np.array(xs, float), ys, [by_x[x] for x in xs], peak_x, m)
        out[f"{m}_peak_significant"] = (
            peak.significant if peak is not None and peak.seeds >= 2 else None
        )
    return out


def whole_seeds(by_x: dict) -> list:
    """The seeds stored at every x of ``by_x`` ({x: {seed: value}}): those with a whole curve."""
    held = [set(at) for at in by_x.values()]
    return sorted(set.intersection(*held)) if held else []


def own_landmark(by_x: dict, seed: int, landmark: Landmark, tol: float) -> float | None:
    """One seed's landmark, by the kind's rule, on the x values where it has a value."""
    xs = sorted(x for x, at in by_x.items() if seed in at)
    if not xs:
        return None
    return landmark(np.array(xs, float), np.array([by_x[x][seed] for x in xs], float), tol)


def spread(mark: dict, x: str = "x") -> str:
    """How the seeds' own landmarks spread, for a summary line ("" with one seed); over the
    seeds stored at every ``x`` where some are not (they are named, "the 2 of 4 seeds")."""
    n, reached = mark.get("n_seeds") or 0, mark.get("threshold_seeds") or 0
    whole = mark.get("curve_seeds", n)
    low, high = mark.get("threshold_x_low"), mark.get("threshold_x_high")
    if n < 2:
        return ""
    over = f"over the {whole} of {n} seeds stored at every {x}"
    if whole < 2:
        return f" ({over}: no range)" if whole < n else ""
    if low is None:
        return ""
    values = f"{low:g}-{high:g}"
    if whole < n:
        if reached < whole:
            return f" ({over}: {reached} reach it, {values})"
        return f" ({over}: all at {low:g})" if low == high else f" ({over}: {values})"
    if reached < n:
        return f" ({reached} of {n} seeds reach it, {values})"
    return f" (all {n} seeds at {low:g})" if low == high else f" (seeds {values})"


def peak_note(mark: dict, metric: str) -> str:
    """``, 95% low-high, significant`` (or ``not significant``) for a peak's summary."""
    low, high = mark.get(f"{metric}_peak_ci_low"), mark.get(f"{metric}_peak_ci_high")
    band = f", 95% {low:.3g}-{high:.3g}" if low is not None and high is not None else ""
    significant = mark.get(f"{metric}_peak_significant")
    if significant is None:
        return band
    return band + (", significant" if significant else ", not significant")
