"""Where a curve's landmark and test peak lie, how they are told, and the fields that set them.

Interpolation threshold (model-wise, epoch-wise): the smallest x whose mean
``threshold_metric`` is below ``threshold_tol``. Test peak: the largest mean test metric at
or beyond the best x below the threshold (so the classical U's left arm, where small models
underfit, is not the peak).

Sample-wise curves (x = n_train) run the other way: more data is harder to fit, so their
landmark is the effective model complexity (EMC, Nakkiran et al. 2019), the largest n_train
whose mean train metric is below the tolerance, and the peak is the largest test metric at
or beyond the best n_train the model still fits.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dd.analysis.curves.base import PEAK_METRICS, CurveSet
from dd.analysis.curves.intervals import peak_note, spread
from dd.spec.config import Trial
from dd.spec.errors import SpecError
from dd.spec.fields import field_kind
from dd.store.schema import METRICS, column_name


def interpolation_threshold(xs: np.ndarray, train_metric: np.ndarray, tol: float) -> float | None:
    """The smallest x whose mean train metric is below ``tol`` (None if none is)."""
    below = np.flatnonzero(np.nan_to_num(train_metric, nan=np.inf) < tol)
    return float(xs[below[0]]) if len(below) else None


def peak_index(xs: np.ndarray, test_metric: np.ndarray, threshold: float | None) -> int | None:
    """Index of the test peak: the maximum at or right of the dip (``dip_index``)."""
    if len(test_metric) == 0:
        return None
    start = dip_index(xs, test_metric, threshold)
    return int(start + np.argmax(np.nan_to_num(test_metric, nan=-np.inf)[start:]))


def dip_index(xs: np.ndarray, test_metric: np.ndarray, threshold: float | None) -> int:
    """Index of the dip the peak is sought right of: the best point below the threshold, or
    without one the first local minimum (left of it lies the first descent)."""
    y = np.nan_to_num(test_metric, nan=-np.inf)
    if threshold is not None and np.any(xs < threshold):
        below = np.flatnonzero(xs < threshold)
        return int(below[np.argmin(np.nan_to_num(test_metric[below], nan=np.inf))])
    rises = np.flatnonzero(np.diff(y) > 0)
    return int(rises[0]) if len(rises) else 0


def emc_value(ns: np.ndarray, train_metric: np.ndarray, tol: float) -> float | None:
    """The largest n whose mean train metric is below ``tol`` (None if none is): Nakkiran et
    al.'s effective model complexity, read off the swept training-set sizes."""
    below = np.flatnonzero(np.nan_to_num(train_metric, nan=np.inf) < tol)
    return float(ns[below[-1]]) if len(below) else None


def sample_peak_index(ns: np.ndarray, test_metric: np.ndarray, emc: float | None) -> int | None:
    """Index of the sample-wise test peak: the maximum at or right of the best n at or below
    the EMC (the small-data left arm, high because data is scarce, is not the peak).

    Without an EMC, the maximum right of the first local minimum, as ``peak_index``.
    """
    y = np.nan_to_num(test_metric, nan=-np.inf)
    if len(y) == 0 or emc is None:
        return peak_index(ns, test_metric, None)
    fit = np.flatnonzero(ns <= emc)
    start = fit[np.argmin(np.nan_to_num(test_metric[fit], nan=np.inf))]
    return int(start + np.argmax(y[start:]))


def landmark_lines(curves: CurveSet, landmark: str) -> list[str]:
    """One line per series: where its ``landmark`` (threshold, EMC) lies with the seeds' own
    range, and its test peaks with their 95% interval and whether the verdict's test finds
    them significant (``dd.analysis.curves.intervals``); one seed says it claims neither."""
    series_cols = [column_name(s) for s in curves.series]
    lines = []
    for mark in curves.landmarks.to_pylist():
        where = " ".join(f"{c}={mark[c]}" for c in series_cols)
        peaks = ", ".join(
            f"{m} peak at {mark[f'{m}_peak_x']:g} ({mark[f'{m}_peak']:.4g}{peak_note(mark, m)})"
            for m in PEAK_METRICS
            if mark.get(f"{m}_peak_x") is not None
        )
        thr = mark["threshold_x"]
        lines.append(
            f"{curves.kind} {where}".rstrip()
            + f": {landmark} "
            + (f"at {curves.x}={thr:g}" if thr is not None else "not reached")
            + spread(mark, curves.x)
            + (f"; {peaks}" if peaks else "")
            + ("; 1 seed: no interval or significance test" if mark.get("n_seeds") == 1 else "")
        )
    return lines


def check_swept(curves, axes: list[str], names: tuple[str, ...]) -> None:
    """The ``curves:`` fields ``names`` are None or swept axes: a typo would otherwise read
    as a scientific result ("threshold not reached")."""
    for field_name in names:
        value = getattr(curves, field_name)
        if value is not None and value not in axes:
            what = "not a trial field" if field_kind(Trial, value) is None else "not swept"
            raise SpecError(
                f"curves.{field_name}",
                f"{value!r} is {what}; the swept axes: " + (", ".join(axes) or "none"),
            )


def check_landmark_fields(curves, axes: list[str], trial: Trial) -> None:
    """``curves.x`` is swept and ``curves.threshold_metric`` is a metric of the sweep."""
    check_swept(curves, axes, ("x",))
    metric = curves.threshold_metric
    if metric is None:
        return
    classification = trial.data.CLASSIFICATION
    allowed = [
        m
        for m, (kind, _) in METRICS.items()
        if (pa.types.is_integer(kind) or pa.types.is_floating(kind))  # one number per row
        and m not in ("diverged_step", "epoch")
        and (classification or "error" not in m and "acc" not in m)
    ]
    if metric not in allowed:
        raise SpecError(
            "curves.threshold_metric",
            f"{metric!r} is not a metric of this sweep "
            f"({type(trial.data).__name__}); allowed: {', '.join(allowed)}",
        )
