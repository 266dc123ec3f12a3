"""The landmark tables and summary lines carry each landmark's interval over seeds and the
verdict's significance (``dd.analysis.curves.intervals``): a bump inside the seed noise reads
"not significant" with its interval, a real peak "significant", the threshold the range of
the seeds' own thresholds, and one seed claims no interval."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy import stats

from dd.analysis.aggregate import compute_kinds
from dd.analysis.curves.intervals import spread
from dd.analysis.curves.landmarks import dip_index, peak_index
from dd.analysis.curves.registry import load as load_curve_kinds
from dd.analysis.curves.verdict import locate
from dd.plan.sweep import parse_spec
from dd.spec.ids import trial_id
from helpers import width_rows, width_spec

KINDS = {kind.name: kind for kind in load_curve_kinds()}
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


def _grok(seeds, generalise: dict):
    """A modular sweep over weight decay x ``seeds``: every trial memorises at step 100 and
    ``generalise[(wd, seed)]`` is the step its test accuracy reaches 1 (None: never)."""
    spec = parse_spec(
        {
            "name": "g",
            "data": {"name": "modular", "p": 7},
            "model": {"name": "mlp", "width": 8},
            "train": {"batch_size": "full"},
            "grid": {"train.weight_decay": [0.0, 1.0], "seed": list(seeds)},
        }
    )
    records = []
    for t in spec.trials:
        at = generalise[t.train.weight_decay, t.seed]
        for step in (10, 100, 300, 400, 500, 900, 1000):
            records.append(
                {
                    "trial_id": trial_id(t),
                    "status": "ok",
                    "seed": t.seed,
                    "train_weight_decay": t.train.weight_decay,
                    "step": step,
                    "epoch": step,
                    "train_error": 0.0 if step >= 100 else 0.5,
                    "test_error": 0.0 if at is not None and step >= at else 0.9,
                    "train_error_noisy": np.nan,
                    "noisy_true_acc": np.nan,
                }
            )
    result = compute_kinds(pa.Table.from_pylist(records), spec)["grok_times"]
    return result, KINDS["grok_times"].summary(result)


def test_grokking_times_per_cell_are_the_median_with_the_seeds_range():
    generalise = {(1.0, 0): 300, (1.0, 1): 500, (1.0, 2): 400, (0.0, 0): None, (0.0, 1): None}
    result, lines = _grok(range(3), {**generalise, (0.0, 2): 900})
    cells = {c["train_weight_decay"]: c for c in result.cells.to_pylist()}
    assert (cells[1.0]["t_generalise"], cells[1.0]["t_generalise_low"]) == (400, 300)
    assert (cells[1.0]["t_generalise_high"], cells[1.0]["t_generalise_seeds"]) == (500, 3)
    assert cells[0.0]["t_generalise"] is None and cells[0.0]["t_generalise_seeds"] == 1
    assert (
        "  train_weight_decay=1: T_memorise 100 in (10, 100] (all 3 seeds at 100), "
        "T_generalise 400 in (300, 400] (seeds 300-500)" in lines
    )
    assert (
        "  train_weight_decay=0: T_memorise 100 in (10, 100] (all 3 seeds at 100), "
        "T_generalise not within the budget (1 of 3 seeds: 900-900)" in lines
    )


def test_grokking_times_of_one_seed_claim_no_range():
    result, lines = _grok([0], {(1.0, 0): 300, (0.0, 0): None})
    cells = {c["train_weight_decay"]: c for c in result.cells.to_pylist()}
    assert cells[1.0]["t_generalise"] == 300 and cells[1.0]["t_generalise_low"] is None
    assert (
        "  train_weight_decay=1: T_memorise 100 in (10, 100], T_generalise 300 in (100, 300]; "
        "1 seed: no range" in lines
    )


# Seeds 0-1 at every width; seeds 2-3 (added by refinement around the peak) only at 8, 16, 32.
# Every seed fits from width 4 on: the threshold is 4 for each of them.
PARTIAL_WIDTHS = (2, 4, 8, 16, 32, 64)
PARTIAL_TEST = {
    (2, 0): 0.55, (2, 1): 0.56,
    (4, 0): 0.50, (4, 1): 0.52,
    (8, 0): 0.58, (8, 1): 0.61, (8, 2): 0.70, (8, 3): 0.40,
    (16, 0): 0.52, (16, 1): 0.53, (16, 2): 0.55, (16, 3): 0.50,
    (32, 0): 0.47, (32, 1): 0.48, (32, 2): 0.49, (32, 3): 0.46,
    (64, 0): 0.44, (64, 1): 0.45,
}  # fmt: skip


def _partial_seeds():
    spec = width_spec(PARTIAL_WIDTHS, range(4))
    test = {(w, s): PARTIAL_TEST.get((w, s), 0.0) for w in PARTIAL_WIDTHS for s in range(4)}
    rows = width_rows(spec, test, {w: 0.3 if w == 2 else 0.0 for w in PARTIAL_WIDTHS})
    stored = [
        (w, s) in PARTIAL_TEST
        for w, s in zip(rows["model_width"].to_pylist(), rows["seed"].to_pylist(), strict=True)
    ]
    curves = compute_kinds(rows.filter(pa.array(stored)), spec)["model_wise"]
    return curves, curves.landmarks.to_pylist()[0], KINDS["model_wise"].summary(curves)[0]


def test_seeds_stored_at_a_few_widths_are_left_out_of_the_thresholds_spread():
    """A seed stored only at 8, 16 and 32 would read its threshold at 8, its smallest stored
    width: the spread is read over the seeds stored at every width, and says so."""
    _, mark, line = _partial_seeds()
    assert (mark["threshold_x"], mark["threshold_x_low"], mark["threshold_x_high"]) == (4, 4, 4)
    assert (mark["n_seeds"], mark["curve_seeds"], mark["threshold_seeds"]) == (4, 2, 2)
    assert line.startswith(
        "model_wise: threshold at model.width=4 "
        "(over the 2 of 4 seeds stored at every model.width: all at 4); "
    )


def test_means_at_one_width_use_every_seed_and_paired_changes_the_seeds_at_both():
    """The peak's mean and interval at 8 are over its 4 seeds; its rise over 4 and fall to 64
    pair only seeds 0 and 1, the ones stored at both widths."""
    curves, mark, _ = _partial_seeds()
    at8 = [PARTIAL_TEST[8, s] for s in range(4)]
    assert mark["test_error_peak_x"] == 8 and np.isclose(mark["test_error_peak"], np.mean(at8))
    half = stats.t.ppf(0.975, 3) * np.std(at8, ddof=1) / 2
    assert np.isclose(mark["test_error_peak_ci_low"], np.mean(at8) - half)
    per_x = [
        {s: PARTIAL_TEST[w, s] for s in range(4) if (w, s) in PARTIAL_TEST} for w in PARTIAL_WIDTHS
    ]
    ys = np.array([np.mean(list(p.values())) for p in per_x])
    peak = locate(np.array(PARTIAL_WIDTHS, float), ys, per_x, 8, "test_error")
    assert (peak.j, peak.rise.n, peak.fall.n) == (1, 2, 2)
    assert np.isclose(peak.rise.mean, np.mean([0.58 - 0.50, 0.61 - 0.52]))
    assert np.isclose(peak.fall.mean, np.mean([0.58 - 0.44, 0.61 - 0.45]))
    rises = np.array([0.08, 0.09])
    half = stats.t.ppf(0.975, 1) * rises.std(ddof=1) / np.sqrt(2)
    assert np.isclose(peak.rise.low, rises.mean() - half)
    assert mark["test_error_peak_significant"] is peak.significant
    (verdict,) = KINDS["model_wise"].verdict(curves)
    assert f"rise +{100 * rises.mean():.1f} points over width=4" in verdict


def test_the_spread_names_the_seeds_stored_at_every_x_and_one_such_seed_gives_no_range():
    mark = {"n_seeds": 4, "curve_seeds": 3, "threshold_seeds": 2}
    assert spread({**mark, "threshold_x_low": 4, "threshold_x_high": 8}, "model.width") == (
        " (over the 3 of 4 seeds stored at every model.width: 2 reach it, 4-8)"
    )
    one = {"n_seeds": 4, "curve_seeds": 1, "threshold_seeds": 1}
    assert spread({**one, "threshold_x_low": None, "threshold_x_high": None}, "epoch") == (
        " (over the 1 of 4 seeds stored at every epoch: no range)"
    )
    whole = {"n_seeds": 3, "curve_seeds": 3, "threshold_seeds": 3}
    assert spread({**whole, "threshold_x_low": 4, "threshold_x_high": 16}) == " (seeds 4-16)"


def test_a_diverged_point_below_the_threshold_is_not_the_dip_the_peak_is_sought_from():
    """Width 2 diverged (NaN test error); the dip is width 4's 0.2, so the peak is 0.4 at 5,
    not the 0.6 of the first descent at 3."""
    xs = np.array([1, 2, 3, 4, 5, 6])
    test = np.array([0.5, np.nan, 0.6, 0.2, 0.4, 0.1])
    assert (dip_index(xs, test, 5.0), peak_index(xs, test, 5.0)) == (3, 4)
