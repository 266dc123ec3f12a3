"""The verdict lines: what a sweep found, said from its curves and located landmarks
(``dd.analysis.curves.verdict``)."""

from __future__ import annotations

import pyarrow as pa

from dd.analysis.curves.base import CurveSet
from dd.analysis.curves.verdict import capacity_verdict, epoch_verdict


def _curves(x: str, means: dict, marks: list[dict], series: tuple = ()) -> CurveSet:
    points = [
        {**dict(key), "x": float(xv), "metric": "test_error", "mean": y}
        for key, curve in means.items()
        for xv, y in curve
    ]
    return CurveSet(
        kind="k",
        x=x,
        series=series,
        points=pa.Table.from_pylist(points),
        per_seed=pa.table({}),
        landmarks=pa.Table.from_pylist(marks),
    )


DOUBLE = [(2, 0.70), (12, 0.49), (30, 0.52), (47, 0.566), (61, 0.55), (300, 0.469)]


def test_a_model_wise_peak_with_a_second_descent_is_double_descent():
    curves = _curves(
        "model.width",
        {(): DOUBLE},
        [{"threshold_x": 61.0, "test_error_peak_x": 47.0, "test_error_peak": 0.566}],
    )
    assert capacity_verdict(curves, "model-wise") == [
        "model-wise double descent: test error peaks at width=47 (0.566, +7.6 points over the "
        "best smaller width=12), interpolation threshold width=61, 0.469 at width=300"
    ]


def test_a_curve_that_only_falls_has_no_peak():
    falling = [(x, 0.8 - 0.001 * x) for x in (2, 12, 47, 300)]
    curves = _curves(
        "model.width",
        {(): falling},
        [{"threshold_x": None, "test_error_peak_x": 2.0, "test_error_peak": 0.798}],
    )
    (line,) = capacity_verdict(curves, "model-wise")
    assert line.startswith("model-wise: no test error peak past the best smaller width")
    assert "interpolation threshold not reached" in line


def test_epoch_wise_peaks_are_one_line_naming_only_the_series_that_have_one():
    bump = [(1, 0.6), (10, 0.40), (30, 0.46), (100, 0.41)]
    flat = [(1, 0.6), (10, 0.5), (30, 0.45), (100, 0.41)]
    curves = _curves(
        "epoch",
        {(("model_width", 47),): bump, (("model_width", 300),): flat},
        [
            {"model_width": 47, "test_error_peak_x": 30.0, "test_error_peak": 0.46},
            {"model_width": 300, "test_error_peak_x": 1.0, "test_error_peak": 0.6},
        ],
        series=("model.width",),
    )
    assert epoch_verdict(curves) == [
        "epoch-wise double descent in 1 of 2 series: model_width=47 (epoch 30, 0.46 then 0.41)"
    ]
