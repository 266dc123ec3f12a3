"""Where a refinement target lies in the stored rows, and which axis values bracket it closer.

Pure functions of the rows: ``locate`` reads one target (``dd.plan.refine.Refine``) per series
(the other swept axes' values) as the curves define it (``dd.analysis.curves.landmarks``):

- threshold: the smallest x whose mean final ``threshold_metric`` is under its tolerance,
  bracketed by the largest stored x below it (not under, by definition);
- boundary: the smallest x where most seeds reach ``curves.grok_accuracy`` test accuracy
  at some evaluation within the budget, bracketed likewise;
- peak: the test-metric peak past the best x below the threshold (``peak_index``, ``is_peak``),
  bracketed by its neighbours, with its 95% interval over seeds (``_peak_interval``) and
  whether the verdict's test finds it significant (``dd.analysis.curves.verdict.locate``).

New values bisect the bracket (both sides of a peak): the midpoint, the geometric mean on a
log scale, rounded for an integer axis. A bracket within ``resolution`` (or, on an integer
axis, between neighbouring integers) is resolved. Where noise dominates a peak (it is not
significant, or a neighbour is within its interval, so that a point between them would land
inside the interval and not shrink it), the peak and its neighbours get seeds instead
(``seed_xs``), and so do the dip and the largest x where the peak's rise from or fall to them is
within the noise.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dd.analysis.curves.base import PEAK_METRICS, defaults, final_rows, is_peak
from dd.analysis.curves.landmarks import dip_index, interpolation_threshold, peak_index
from dd.analysis.curves.verdict import locate as peak_test, paired_change
from dd.plan.refine import Refine
from dd.store.schema import column_name


@dataclass(frozen=True)
class Located:
    """One target in one series: its bracket [lo, hi] (None where not located), the located
    x, the fewest seeds at the bracket's ends, the values that would narrow it and why not
    (``why``: None while it can narrow). A peak also carries its 95% interval ``ci`` (lo, hi;
    None with fewer than 2 seeds), whether it is ``significant`` (None: not tested) and the
    xs that get new seeds where noise dominates it (``seed_xs``)."""

    series: tuple
    lo: float | None
    hi: float | None
    at: float | None
    seeds: int
    new: tuple
    why: str | None
    ci: tuple | None = None
    significant: bool | None = None
    seed_xs: tuple = ()

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
            per_x = _per_seed(source, x_col, test, here, xs)
            found = _peak(key, xs, means, tol, test_means, per_x, target, test)
            if found.seed_xs and not _seeds_alone(spec):  # seeds move with another axis
                new = (
                    _narrow(found.lo, found.at, target)[0] + _narrow(found.at, found.hi, target)[0]
                )
                found = dataclasses.replace(found, new=new, seed_xs=())
            out.append(found)
        else:
            out.append(_bracket(key, xs, means, tol, seeds, target, metric))
    return out


def _seeds_alone(spec) -> bool:
    """Whether seeds can be added alone: ``seed`` is a grid axis outside zip groups."""
    grid = spec.mapping.get("grid") or {}
    zipped = {str(a) for g in grid.get("zip", []) for a in g}
    return "seed" in spec.axes and "seed" not in zipped


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


def _per_seed(table: pa.Table, x_col: str, metric: str | None, here: np.ndarray, xs) -> list:
    """{seed: value of ``metric``} at each of ``xs`` (the paired tests pair seeds)."""
    if metric is None or metric not in table.column_names or "seed" not in table.column_names:
        return [{} for _ in xs]
    x = table[x_col].to_numpy(zero_copy_only=False)[here].astype(float)
    y = table[metric].to_numpy(zero_copy_only=False)[here].astype(float)
    seed = np.array(table["seed"].to_pylist(), dtype=object)[here]
    out = [{} for _ in xs]
    index = {float(v): k for k, v in enumerate(xs)}
    for xv, yv, sv in zip(x, y, seed, strict=True):
        if not np.isnan(yv):
            out[index[float(xv)]][sv] = float(yv)
    return out


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


def _peak(key, xs, means, tol, test_means, per_x, target: Refine, metric) -> Located:
    threshold = interpolation_threshold(xs, means, tol)
    i = peak_index(xs, test_means, threshold)
    if i is None or not is_peak(test_means, i):
        return Located(key, None, None, None, 0, (), "no peak inside the grid")
    lo, at, hi = float(xs[i - 1]), float(xs[i]), float(xs[i + 1])
    seeds = min(len(per_x[j]) for j in (i - 1, i, i + 1))
    tested = peak_test(xs, test_means, per_x, at, metric)
    if tested is None or tested.seeds < 2 or seeds < 2:  # one seed: no noise to weigh
        ci, significant, noisy = None, None, False
    else:
        a, b = _peak_interval(per_x, i, dip_index(xs, test_means, threshold), metric)
        ci, significant = (float(xs[a]), float(xs[b])), tested.significant
        noisy = not significant or a < i or b > i
    if noisy:  # points between the peak and a neighbour in its interval land inside it
        sites = {lo, at, hi} | _untested_ends(xs, tested)
        return Located(key, lo, hi, at, seeds, (), None, ci, significant, tuple(sorted(sites)))
    left, why_left = _narrow(lo, at, target)
    right, why_right = _narrow(at, hi, target)
    why = why_left if why_left and why_right else None
    return Located(key, lo, hi, at, seeds, left + right, why, ci, significant)


def _untested_ends(xs, tested) -> set[float]:
    """The xs the verdict weighs the peak against whose change is within the noise: the dip
    its rise is measured from, the largest x its fall is measured to. Seeds added there pair
    with the peak's and can settle it; seeds elsewhere cannot."""
    ends = set()
    if not tested.rise.significant:
        ends.add(float(xs[tested.j]))
    if not tested.fall.significant:
        ends.add(float(xs[-1]))
    return ends


def _peak_interval(per_x: list[dict], i: int, dip: int, metric: str) -> tuple[int, int]:
    """The peak's 95% interval over seeds, as indices into the stored xs: the run of xs
    around the peak ``i``, no further left than the ``dip`` before it (the best smaller x:
    left of it lies the first descent, whose narrow models may err more than the peak but are
    not where it is), whose test metric is not significantly below the peak's, each by
    the verdict's paired t-test over the seeds both hold (``paired_change``: a ratio for a
    metric unbounded above). It is a confidence set for where the peak lies among the stored
    xs: an x whose seeds are each significantly below the peak's cannot be it, an x within
    the noise can. A paired t-test, not a bootstrap of the argmax: with the 2-5 seeds sweeps
    run, resampling seeds has a handful of distinct resamples (the verdict's reasoning). The
    run stops at the first x that is significantly below (the peak is not beyond it)."""
    a = i
    while a > dip and not paired_change(per_x[i], per_x[a - 1], metric).significant:
        a -= 1
    b = i
    while b < len(per_x) - 1 and not paired_change(per_x[i], per_x[b + 1], metric).significant:
        b += 1
    return a, b


def describe(target: Refine, loc: Located) -> str:
    """Where a located peak lies for a round's or the closing line: ``peak of <axis> at x,
    95% interval lo-hi (n seeds)``, that it is not significant, or that one seed allows no
    interval."""
    head = f"{target.find} of {target.axis}"
    if loc.at is None:
        return f"{head}: {loc.why}"
    seeds = f"{loc.seeds} seed{'' if loc.seeds == 1 else 's'}"
    if loc.ci is None:
        return f"{head} at {loc.at:g} ({seeds}: no interval or significance test)"
    if not loc.significant:
        return (
            f"{head} not significant (mean peak at {loc.at:g}, within the seed noise over "
            f"{loc.ci[0]:g}-{loc.ci[1]:g}; {seeds})"
        )
    return f"{head} at {loc.at:g}, 95% interval {loc.ci[0]:g}-{loc.ci[1]:g} ({seeds})"


def _narrow(lo: float, hi: float, target: Refine) -> tuple[tuple, str | None]:
    """The value bisecting [lo, hi], or none and why: resolved to ``resolution``."""
    wide = hi / lo > target.resolution if target.scale == "log" else hi - lo > target.resolution
    mid = math.sqrt(lo * hi) if target.scale == "log" else (lo + hi) / 2
    mid = int(math.floor(mid + 0.5)) if target.integer else float(f"{mid:.6g}")
    if not wide or not lo < mid < hi:
        return (), f"resolved to {target.resolution:g}"
    return (mid,), None
