"""What a sweep found, in one line per curve kind: the verdict ``dd sweep``, ``dd curves``
and the report lead with (the located landmarks stay in ``curves/*_landmarks.parquet``).

Model-wise (and sample-wise) double descent is a test-metric peak that stands above the best
smaller x and is followed by a lower value at the largest x (the second descent). Epoch-wise,
a series has an epoch-wise peak when its test metric at the located peak epoch stands above
both its best earlier value and its final value by more than ``MARGIN`` (in the metric's own
units: 0.005 is half a point of error).
"""

from __future__ import annotations

import numpy as np

from dd.analysis.curves.base import CurveSet
from dd.store.schema import column_name

MARGIN = 0.005
TEST_METRICS = ("test_error", "test_mse")  # the first the curves hold is the one told


def _metric(curves: CurveSet) -> str | None:
    held = set(curves.points["metric"].to_pylist()) if curves.points.num_rows else set()
    return next((m for m in TEST_METRICS if m in held), None)


def _series(curves: CurveSet, metric: str):
    """(series key, xs, means) of each series' mean ``metric`` curve, and the landmark row."""
    cols = [column_name(s) for s in curves.series]
    points = [p for p in curves.points.to_pylist() if p["metric"] == metric]
    for mark in curves.landmarks.to_pylist():
        key = tuple(mark[c] for c in cols)
        mine = sorted((p["x"], p["mean"]) for p in points if tuple(p[c] for c in cols) == key)
        xs, ys = (np.array(v, float) for v in zip(*mine, strict=True)) if mine else ([], [])
        yield key, np.asarray(xs), np.asarray(ys), mark


def _g(value: float) -> str:
    return f"{value:g}"


def capacity_verdict(
    curves: CurveSet, label: str, landmark: str = "interpolation threshold"
) -> list[str]:
    """``<label> double descent: <metric> peaks at X=... (value, +points over the best smaller
    X=...), interpolation threshold X=..., value at X=max``, or that no peak was found; one line
    per series (a seeds-only series is one line)."""
    metric = _metric(curves)
    if metric is None:
        return []
    name = curves.x.rsplit(".", 1)[-1]
    cols = [column_name(s) for s in curves.series]
    lines = []
    for key, xs, ys, mark in _series(curves, metric):
        where = " ".join(f"{c}={v}" for c, v in zip(cols, key, strict=True))
        head = f"{label} ({where})" if where else label
        peak_x, threshold = mark.get(f"{metric}_peak_x"), mark.get("threshold_x")
        thr = (
            f"{landmark} {name}={_g(threshold)}"
            if threshold is not None
            else f"{landmark} not reached"
        )
        if len(xs) == 0:
            continue
        last = f"{ys[-1]:.4g} at {name}={_g(xs[-1])}"
        if peak_x is not None:
            i = int(np.flatnonzero(xs == peak_x)[0])
            before = ys[:i]
            if len(before) and i < len(xs) - 1:
                j = int(np.nanargmin(before))
                rise, fall = ys[i] - before[j], ys[i] - ys[-1]
                if rise > MARGIN and fall > MARGIN:
                    points = 100 * rise if metric.endswith("error") else rise
                    unit = " points" if metric.endswith("error") else ""
                    lines.append(
                        f"{head} double descent: {metric.replace('_', ' ')} peaks at "
                        f"{name}={_g(xs[i])} ({ys[i]:.4g}, +{points:.3g}{unit} over the best "
                        f"smaller {name}={_g(xs[j])}), {thr}, {last}"
                    )
                    continue
        told = metric.replace("_", " ")
        lines.append(f"{head}: no {told} peak past the best smaller {name}; {thr}, {last}")
    return lines


def epoch_verdict(curves: CurveSet) -> list[str]:
    """One line: the series whose test metric peaks mid-training and falls again (with the
    peak epoch and height), or that none does."""
    metric = _metric(curves)
    if metric is None:
        return []
    cols = [column_name(s) for s in curves.series]
    found, total = [], 0
    for key, xs, ys, mark in _series(curves, metric):
        total += 1
        peak_x = mark.get(f"{metric}_peak_x")
        if peak_x is None or len(xs) < 3:
            continue
        i = int(np.flatnonzero(xs == peak_x)[0])
        if 0 < i < len(xs) - 1:
            best_before = np.nanmin(ys[:i])
            if ys[i] - best_before > MARGIN and ys[i] - ys[-1] > MARGIN:
                where = " ".join(f"{c}={v}" for c, v in zip(cols, key, strict=True)) or "all"
                found.append(f"{where} (epoch {_g(xs[i])}, {ys[i]:.3g} then {ys[-1]:.3g})")
    label = metric.replace("_", " ")
    if not found:
        return [
            f"epoch-wise: no {label} peak followed by a second descent in any of {total} series"
        ]
    return [f"epoch-wise double descent in {len(found)} of {total} series: " + "; ".join(found)]
