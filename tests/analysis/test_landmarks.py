"""The landmark tables and summary lines carry each landmark's interval over seeds and the
verdict's significance (``dd.analysis.curves.intervals``): a bump inside the seed noise reads
"not significant" with its interval, a real peak "significant", the threshold the range of
the seeds' own thresholds, and one seed claims no interval."""

from __future__ import annotations

import numpy as np
from scipy import stats

from dd.analysis.aggregate import compute_kinds
from dd.analysis.curves.registry import CURVE_KINDS
from helpers import width_rows, width_spec

KINDS = {kind.name: kind for kind in CURVE_KINDS}
WIDTHS = (2, 4, 8, 16, 32)
TRAIN = {2: 0.3, 4: 0.2, 8: 0.0, 16: 0.0, 32: 0.0}  # every seed interpolates at width 8
NOISE = {  # the mean bumps 1 point at width 8; the seeds spread over 5 (no real rise)
    2: [0.60, 0.62, 0.61],
    4: [0.48, 0.53, 0.49],
    8: [0.54, 0.49, 0.50],
    16: [0.50, 0.505, 0.495],
    32: [0.47, 0.52, 0.48],
}
REAL = {  # a 9-point rise and a 14-point fall, the seeds within 1 point of each other
    2: [0.60, 0.62, 0.61],
    4: [0.50, 0.51, 0.49],
    8: [0.58, 0.60, 0.59],
    16: [0.52, 0.53, 0.51],
    32: [0.45, 0.47, 0.44],
}


def _model_wise(per_width: dict, train: dict = TRAIN):
    seeds = range(len(next(iter(per_width.values()))))
    spec = width_spec(tuple(per_width), seeds)
    test = {(w, s): per_width[w][s] for w in per_width for s in seeds}
    curves = compute_kinds(width_rows(spec, test, train), spec)["model_wise"]
    (mark,) = curves.landmarks.to_pylist()
    (line,) = KINDS["model_wise"].summary(curves)
    return curves, mark, line


def test_a_bump_inside_the_seed_noise_reads_not_significant_with_its_interval():
    curves, mark, line = _model_wise(NOISE)
    assert line == (
        "model_wise: threshold at model.width=8 (all 3 seeds at 8); "
        "test_error peak at 8 (0.51, 95% 0.444-0.576, not significant)"
    )
    values = np.array(NOISE[8])
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    assert np.isclose(mark["test_error_peak_ci_low"], values.mean() - half)
    assert np.isclose(mark["test_error_peak_ci_high"], values.mean() + half)
    assert mark["test_error_peak_significant"] is False
    (verdict,) = KINDS["model_wise"].verdict(curves)
    assert verdict.startswith("model-wise: no significant double descent"), "the same test"


def test_a_real_peak_carries_its_interval_and_significance_in_table_and_line():
    curves, mark, line = _model_wise(REAL)
    assert line == (
        "model_wise: threshold at model.width=8 (all 3 seeds at 8); "
        "test_error peak at 8 (0.59, 95% 0.565-0.615, significant)"
    )
    assert mark["test_error_peak_x"] == 8 and np.isclose(mark["test_error_peak"], 0.59)
    assert np.isclose(mark["test_error_peak_ci_low"], 0.59 - stats.t.ppf(0.975, 2) * 0.01 / 3**0.5)
    assert mark["test_error_peak_significant"] is True and mark["n_seeds"] == 3
    (verdict,) = KINDS["model_wise"].verdict(curves)
    assert verdict.startswith("model-wise double descent: test error peaks at width=8 (0.59, 95% ")


def test_the_threshold_carries_the_range_of_the_seeds_own_thresholds():
    """Seeds 0, 1 and 2 fit from widths 4, 8 and 16; the mean train error drops below the
    tolerance (0.01) at 16."""
    train = {2: [0.3] * 3, 4: [0.0, 0.2, 0.2], 8: [0.0, 0.0, 0.1], 16: [0.0] * 3, 32: [0.0] * 3}
    _, mark, line = _model_wise(REAL, train)
    assert (mark["threshold_x"], mark["threshold_x_low"], mark["threshold_x_high"]) == (16, 4, 16)
    assert mark["threshold_seeds"] == 3
    assert line.startswith("model_wise: threshold at model.width=16 (seeds 4-16); ")


def test_a_seed_that_never_fits_is_counted_out_of_the_thresholds_range():
    """Seed 2 ends at train error 0.02, above the tolerance, while the mean goes below it."""
    train = {2: [0.3] * 3, 4: [0.2] * 3, 8: [0.0, 0.0, 0.1], 16: [0.0, 0.0, 0.02], 32: [0, 0, 0.02]}
    _, mark, line = _model_wise(REAL, train)
    assert (mark["threshold_x"], mark["threshold_x_low"], mark["threshold_x_high"]) == (16, 8, 8)
    assert mark["threshold_seeds"] == 2
    assert line.startswith("model_wise: threshold at model.width=16 (2 of 3 seeds reach it, 8-8); ")


def test_one_seed_claims_no_interval():
    one = {w: [values[0]] for w, values in REAL.items()}
    _, mark, line = _model_wise(one)
    assert line == (
        "model_wise: threshold at model.width=8; test_error peak at 8 (0.58); "
        "1 seed: no interval or significance test"
    )
    assert mark["n_seeds"] == 1
    assert mark["test_error_peak_ci_low"] is None and mark["test_error_peak_ci_high"] is None
    assert mark["test_error_peak_significant"] is None
    assert mark["threshold_x_low"] is None and mark["threshold_x_high"] is None
