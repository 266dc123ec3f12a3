"""What a sweep found, in one line per curve kind: the verdict ``dd sweep``, ``dd curves``
and the report lead with (the located landmarks stay in ``curves/*_landmarks.parquet``).

Model-wise (and sample-wise) double descent is a test-metric peak (located on the mean curve,
never at the first or last x) that stands above the best smaller x and is followed by a lower
value at the largest x (the second descent); epoch-wise the same over epochs, per series: the
rise above the best earlier epoch and the fall to the last one. A peak is only called double
descent when it is significant over seeds: the rise and the fall are each tested with a
paired Student-t interval, seed by seed (each seed's value at the peak minus its own value at
the best smaller x, resp. at the largest x, over the seeds present at both), and both 95%
intervals must lie above zero. The t-interval, not a bootstrap: with the 2-5 seeds sweeps run,
a bootstrap of the mean has a handful of distinct resamples and its interval is too narrow.
With fewer than 2 seeds at both points the line says so and claims nothing statistical.
A metric unbounded above (a test MSE) is tested as a ratio: the t-interval of the seeds' log
ratios, exponentiated. Near an interpolation threshold such a metric is heavy-tailed (the
min-norm model's test MSE at p = n has no finite mean), so raw differences of a few huge
values swamp a rise that every seed shows; its ratio is what the seeds agree on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dd.analysis.curves.base import CurveSet, is_peak
from dd.analysis.curves.ranges import metric_range, t_interval
from dd.store.schema import column_name

TEST_METRICS = ("test_error", "test_mse")  # the first the curves hold is the one told


@dataclass(frozen=True)
class Change:
    """A paired change over seeds: its mean difference, the 95% t-interval (of the
    difference, or with ``ratio`` of the ratio top / base) and the seeds it pairs."""

    mean: float
    low: float
    high: float
    n: int
    ratio: bool = False

    @property
    def significant(self) -> bool:
        return self.n >= 2 and self.low > (1.0 if self.ratio else 0.0)


@dataclass(frozen=True)
class Peak:
    """A located peak at index ``i``, its rise over the best smaller x (index ``j``) and its
    fall to the largest x."""

    i: int
    j: int
    rise: Change
    fall: Change

    @property
    def seeds(self) -> int:
        return min(self.rise.n, self.fall.n)

    @property
    def significant(self) -> bool:
        return self.rise.significant and self.fall.significant


def paired_change(top: dict, base: dict, metric: str) -> Change:
    """``top - base`` seed by seed over the seeds both hold, with its 95% t-interval (clipped
    to what a difference of the metric can be)."""
    seeds = sorted(set(top) & set(base))
    if not seeds:
        return Change(np.nan, np.nan, np.nan, 0)
    tops, bases = np.array([top[s] for s in seeds]), np.array([base[s] for s in seeds])
    lo, hi = metric_range(metric)
    if hi == np.inf and lo >= 0 and np.all(tops > 0) and np.all(bases > 0):
        _, low, high = t_interval(np.log(tops) - np.log(bases))
        return Change(float(np.mean(tops - bases)), np.exp(low), np.exp(high), len(seeds), True)
    mean, low, high = t_interval(tops - bases)
    span = hi - lo
    return Change(mean, max(low, -span), min(high, span), len(seeds))


def locate(xs, ys, seeds_at: list[dict], peak_x, metric: str) -> Peak | None:
    """The peak at ``peak_x`` with a rise and a fall in the mean, or None (no peak, a peak
    at an edge, or one the mean does not rise to and fall from)."""
    hits = np.flatnonzero(xs == peak_x) if peak_x is not None else []
    if not len(hits) or not is_peak(ys, int(hits[0])):
        return None
    i = int(hits[0])
    j = int(np.nanargmin(ys[:i]))
    rise = paired_change(seeds_at[i], seeds_at[j], metric)
    return Peak(i, j, rise, paired_change(seeds_at[i], seeds_at[-1], metric))


def _metric(curves: CurveSet) -> str | None:
    held = set(curves.points["metric"].to_pylist()) if curves.points.num_rows else set()
    return next((m for m in TEST_METRICS if m in held), None)


def _series(curves: CurveSet, metric: str):
    """Per series: its key, xs, mean / ci_low / ci_high of ``metric``, {seed: value} per x and
    its landmark row."""
    cols = [column_name(s) for s in curves.series]
    points: dict[tuple, list] = {}
    for p in curves.points.to_pylist():
        if p["metric"] == metric:
            points.setdefault(tuple(p[c] for c in cols), []).append(p)
    seeds: dict[tuple, dict] = {}
    if "metric" in curves.per_seed.column_names:
        for r in curves.per_seed.to_pylist():
            if r["metric"] == metric:
                at = (tuple(r[c] for c in cols), r["x"])
                seeds.setdefault(at, {})[r["seed"]] = r["value"]
    for mark in curves.landmarks.to_pylist():
        key = tuple(mark[c] for c in cols)
        mine = sorted(points.get(key, []), key=lambda p: p["x"])
        xs = np.array([p["x"] for p in mine], float)
        ys, low, high = (
            np.array([p.get(f, np.nan) for p in mine], float) for f in ("mean", "ci_low", "ci_high")
        )
        per_x = [seeds.get((key, p["x"]), {}) for p in mine]
        yield key, xs, ys, low, high, per_x, mark


def _g(value: float) -> str:
    return f"{value:g}"


def _amount(value: float, metric: str) -> str:
    return f"{100 * value:+.1f} points" if metric.endswith("error") else f"{value:+.3g}"


def _interval(change: Change, metric: str) -> str:
    if change.ratio:
        return f"x{change.low:.3g} to x{change.high:.3g}"
    scale = 100 if metric.endswith("error") else 1
    fmt = "{:+.1f}" if metric.endswith("error") else "{:+.3g}"
    return fmt.format(scale * change.low) + " to " + fmt.format(scale * change.high)


def _seeds(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}, no significance test"


def capacity_verdict(
    curves: CurveSet, label: str, landmark: str = "interpolation threshold"
) -> list[str]:
    """One line per series (a seeds-only series is one line): ``<label> double descent: ...``
    with the peak's interval and the rise's and fall's, only when both are significant; else
    that the peak is not significant, that one seed allows no test, or that there is none."""
    metric = _metric(curves)
    if metric is None:
        return []
    name = curves.x.rsplit(".", 1)[-1]
    told = metric.replace("_", " ")
    cols = [column_name(s) for s in curves.series]
    lines = []
    for key, xs, ys, lows, highs, per_x, mark in _series(curves, metric):
        if len(xs) == 0:
            continue
        where = " ".join(f"{c}={v}" for c, v in zip(cols, key, strict=True))
        head = f"{label} ({where})" if where else label
        threshold = mark.get("threshold_x")
        thr = (
            f"{landmark} {name}={_g(threshold)}"
            if threshold is not None
            else f"{landmark} not reached"
        )
        last = f"{ys[-1]:.4g} at {name}={_g(xs[-1])}"
        peak = locate(xs, ys, per_x, mark.get(f"{metric}_peak_x"), metric)
        if peak is None:
            lines.append(f"{head}: no {told} peak past the best smaller {name}; {thr}, {last}")
            continue
        i, rise, fall = peak.i, peak.rise, peak.fall
        at = f"{name}={_g(xs[i])}"
        over, to = f"over {name}={_g(xs[peak.j])}", f"to {name}={_g(xs[-1])}"
        if peak.seeds < 2:
            lines.append(
                f"{head}: {_seeds(peak.seeds)}; peak at {at} ({ys[i]:.4g}; rise "
                f"{_amount(rise.mean, metric)} {over}; fall {_amount(fall.mean, metric)} "
                f"{to}), {thr}, {last}"
            )
        elif peak.significant:
            lines.append(
                f"{head} double descent: {told} peaks at {at} ({ys[i]:.4g}, 95% "
                f"{lows[i]:.3g}-{highs[i]:.3g}; rise {_amount(rise.mean, metric)} {over}, 95% "
                f"{_interval(rise, metric)}; fall {_amount(fall.mean, metric)} {to}, 95% "
                f"{_interval(fall, metric)}), {thr}, {last}"
            )
        else:
            lines.append(
                f"{head}: no significant double descent (peak at {at}, rise "
                f"{_amount(rise.mean, metric)} {over}, 95% interval {_interval(rise, metric)}; "
                f"fall {_amount(fall.mean, metric)} {to}, 95% interval "
                f"{_interval(fall, metric)}); {thr}, {last}"
            )
    return lines


def epoch_verdict(curves: CurveSet) -> list[str]:
    """One line: the series whose test metric peaks mid-training and falls again, both
    significant over seeds (with the peak epoch, height and intervals), or that none does
    (and how many have a mean peak inside the seed noise); with one seed, the mean peaks
    and that nothing was tested."""
    metric = _metric(curves)
    if metric is None:
        return []
    label = metric.replace("_", " ")
    cols = [column_name(s) for s in curves.series]
    found, noise, untested = [], 0, []
    total, seeds = 0, 0
    for key, xs, ys, _, _, per_x, mark in _series(curves, metric):
        total += 1
        seeds = max(seeds, *(len(s) for s in per_x), 0)
        peak = locate(xs, ys, per_x, mark.get(f"{metric}_peak_x"), metric)
        if peak is None:
            continue
        where = " ".join(f"{c}={v}" for c, v in zip(cols, key, strict=True)) or "all"
        i = peak.i
        told = f"{where} (epoch {_g(xs[i])}, {ys[i]:.4g} then {ys[-1]:.4g}"
        if peak.seeds < 2:
            untested.append(told + ")")
        elif peak.significant:
            found.append(
                f"{told}; rise {_amount(peak.rise.mean, metric)} over epoch {_g(xs[peak.j])}, "
                f"95% {_interval(peak.rise, metric)}; fall {_amount(peak.fall.mean, metric)}, "
                f"95% {_interval(peak.fall, metric)})"
            )
        else:
            noise += 1
    pattern = f"{label} peak followed by a second descent"
    if seeds < 2:
        if not untested:
            return [f"epoch-wise: {_seeds(seeds)}; no {pattern} in any of {total} series"]
        return [
            f"epoch-wise: {_seeds(seeds)}; a {pattern} in {len(untested)} of {total} series: "
            + "; ".join(untested)
        ]
    if found:
        line = (
            f"epoch-wise double descent in {len(found)} of {total} series (rise and fall "
            "significant at 95% over seeds): " + "; ".join(found)
        )
    else:
        line = f"epoch-wise: no significant {pattern} in any of {total} series"
    if noise:
        line += f" ({noise} with a mean peak within the seed noise)"
    if untested:
        line += "; not tested (1 seed): " + "; ".join(untested)
    return [line]
