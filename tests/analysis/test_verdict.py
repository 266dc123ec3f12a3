"""The verdict lines: what a sweep found, said from its curves, the seeds' own curves and the
located landmarks (``dd.analysis.curves.verdict``). Known answers: seed noise with no real rise
is never called double descent, a real rise is, one seed claims nothing statistical, and a
peak at an edge is never a peak."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy import stats

from dd.analysis.aggregate import compute_kinds
from dd.analysis.curves.registry import load as load_curve_kinds
from dd.plan.sweep import parse_spec
from dd.spec.ids import trial_id
from helpers import width_rows as _rows, width_spec as _spec

KINDS = {kind.name: kind for kind in load_curve_kinds()}


def _verdict(kind: str, widths, per_width: dict, train: dict, epochs=None) -> list[str]:
    """The ``kind`` verdict of a sweep whose test errors are ``per_width[width]`` (one value,
    or one curve over ``epochs``, per seed)."""
    seeds = range(len(next(iter(per_width.values()))))
    spec = _spec(widths, seeds)
    test = {(w, s): per_width[w][s] for w in widths for s in seeds}
    results = compute_kinds(_rows(spec, test, train, epochs), spec)
    return KINDS[kind].verdict(results[kind])


WIDTHS = (2, 4, 8, 16, 32)
TRAIN = {2: 0.3, 4: 0.2, 8: 0.0, 16: 0.0, 32: 0.0}  # interpolation threshold width=8


def test_seed_noise_with_no_real_rise_is_not_double_descent():
    """The mean bumps by 1 point at width 8 and falls 2 points by width 32, but the seeds
    spread over 5 points: neither the rise nor the fall is significant."""
    noise = {
        2: [0.60, 0.62, 0.61],
        4: [0.48, 0.53, 0.49],
        8: [0.54, 0.49, 0.50],
        16: [0.50, 0.505, 0.495],
        32: [0.47, 0.52, 0.48],
    }
    (line,) = _verdict("model_wise", WIDTHS, noise, TRAIN)
    assert line == (
        "model-wise: no significant double descent (peak at width=8, rise +1.0 points over "
        "width=4, 95% interval -11.4 to +13.4; fall +2.0 points to width=32, 95% interval "
        "-10.4 to +14.4); interpolation threshold width=8, 0.49 at width=32"
    )
    rise = np.array(noise[8]) - np.array(noise[4])
    half = stats.t.ppf(0.975, 2) * rise.std(ddof=1) / np.sqrt(3)
    assert np.isclose(100 * (rise.mean() - half), -11.42, atol=0.01), "the paired t-interval"


def test_a_real_rise_and_fall_over_seeds_is_double_descent():
    real = {
        2: [0.60, 0.62, 0.61],
        4: [0.50, 0.51, 0.49],
        8: [0.58, 0.60, 0.59],
        16: [0.52, 0.53, 0.51],
        32: [0.45, 0.47, 0.44],
    }
    (line,) = _verdict("model_wise", WIDTHS, real, TRAIN)
    assert line == (
        "model-wise double descent: test error peaks at width=8 (0.59, 95% 0.565-0.615; "
        "rise +9.0 points over width=4, 95% +6.5 to +11.5; fall +13.7 points to width=32, "
        "95% +10.8 to +16.5), interpolation threshold width=8, 0.4533 at width=32"
    )


def test_one_seed_claims_nothing_statistical():
    one = {2: [0.60], 4: [0.50], 8: [0.51], 16: [0.50], 32: [0.49]}
    (line,) = _verdict("model_wise", WIDTHS, one, TRAIN)
    assert line == (
        "model-wise: 1 seed, no significance test; peak at width=8 (0.51; rise +1.0 points "
        "over width=4; fall +2.0 points to width=32), interpolation threshold width=8, "
        "0.49 at width=32"
    )


def test_an_edge_maximum_is_never_a_peak():
    """Test error that rises to the largest width (the peak would be the last point) or only
    falls from the smallest (the first): no peak in the landmark table, none in the verdict."""
    rising = {w: [0.3 + w / 100 + d for d in (0.0, 0.01, -0.01)] for w in WIDTHS}
    falling = {w: [0.6 - w / 100 + d for d in (0.0, 0.01, -0.01)] for w in WIDTHS}
    for curve in (rising, falling):
        spec = _spec(WIDTHS, range(3))
        test = {(w, s): curve[w][s] for w in WIDTHS for s in range(3)}
        never = dict.fromkeys(WIDTHS, 0.3)  # no threshold: the peak search starts at the left
        model_wise = compute_kinds(_rows(spec, test, never), spec)["model_wise"]
        (mark,) = model_wise.landmarks.to_pylist()
        assert mark["test_error_peak_x"] is None and mark["test_error_peak"] is None
        (line,) = KINDS["model_wise"].verdict(model_wise)
        assert line.startswith("model-wise: no test error peak past the best smaller width")
        (summary,) = KINDS["model_wise"].summary(model_wise)
        assert "peak" not in summary, summary


EPOCHS = [1, 10, 50, 100, 187, 300, 500]


def test_the_default_sweeps_width_4_dip_is_not_epoch_wise_double_descent():
    """Shaped like the default sweep's width-4 series: the mean peaks at epoch 187 and dips
    0.7 points by epoch 500, the three seeds' final values 0.689 / 0.610 / 0.617 at the peak
    spread over 8 points (the stored rows give -8.4 to +10.3; these are rounded)."""
    width_4 = [
        [0.80, 0.66, 0.650, 0.66, 0.689, 0.66, 0.640],
        [0.80, 0.62, 0.600, 0.60, 0.610, 0.62, 0.625],
        [0.80, 0.63, 0.612, 0.61, 0.617, 0.62, 0.631],
    ]
    width_16 = [[0.7, 0.5, 0.45, 0.42, 0.41, 0.40, 0.39 + 0.002 * s] for s in range(3)]
    (line,) = _verdict("epoch_wise", (4, 16), {4: width_4, 16: width_16}, {4: 0.2, 16: 0.0}, EPOCHS)
    assert line == (
        "epoch-wise: no significant test error peak followed by a second descent in any of 2 "
        "series (1 with a mean peak within the seed noise)"
    )


def test_epoch_wise_double_descent_names_only_the_series_with_a_significant_peak():
    bump = [[0.6, 0.40, 0.46, 0.41], [0.6, 0.41, 0.455, 0.42], [0.6, 0.395, 0.47, 0.41]]
    flat = [[0.6, 0.5 + d, 0.45 + d, 0.41 + d] for d in (0.0, 0.01, -0.005)]
    (line,) = _verdict("epoch_wise", (4, 16), {4: bump, 16: flat}, {4: 0.2, 16: 0.2})
    assert line == (
        "epoch-wise double descent in 1 of 2 series (rise and fall significant at 95% over "
        "seeds): model_width=4 (epoch 3, 0.4617 then 0.4133; rise +6.0 points over epoch 2, "
        "95% +2.3 to +9.7; fall +4.8 points, 95% +1.7 to +8.0)"
    )


def test_epoch_wise_with_one_seed_claims_nothing_statistical():
    bump = [[0.6, 0.40, 0.46, 0.41]]
    (line,) = _verdict("epoch_wise", (4, 16), {4: bump, 16: bump}, {4: 0.2, 16: 0.2})
    assert line == (
        "epoch-wise: 1 seed, no significance test; a test error peak followed by a second "
        "descent in 2 of 2 series: model_width=4 (epoch 3, 0.46 then 0.41); "
        "model_width=16 (epoch 3, 0.46 then 0.41)"
    )


# the README's 20-epoch cut of the default sweep (sweeps/mnist1d_mlp.yaml with
# train.epochs=20, run with `dd sweep ... --set train.epochs=20`): each seed's final test and
# train error per width, from curves/model_wise_seeds.parquet (4 decimals)
CUT_TEST = {
    2: [0.8597, 0.7082, 0.9036],
    3: [0.7418, 0.7023, 0.9055],
    4: [0.7263, 0.662, 0.7407],
    5: [0.7285, 0.7124, 0.7165],
    7: [0.7182, 0.6635, 0.7012],
    9: [0.6368, 0.62, 0.6603],
    12: [0.6232, 0.6014, 0.6633],
    16: [0.5861, 0.5864, 0.6188],
    21: [0.5738, 0.5639, 0.6165],
    27: [0.5753, 0.5641, 0.584],
    36: [0.5748, 0.5465, 0.5684],
    47: [0.5623, 0.5259, 0.5384],
    61: [0.5467, 0.4963, 0.5216],
    80: [0.5153, 0.4905, 0.5002],
    104: [0.514, 0.4896, 0.4852],
    135: [0.5079, 0.4877, 0.4795],
    177: [0.502, 0.4742, 0.4764],
    230: [0.4921, 0.4703, 0.4816],
    300: [0.4938, 0.4713, 0.4822],
}


def test_the_readmes_20_epoch_cut_claims_no_double_descent():
    """It printed "model-wise double descent: test error peaks at width=5 (0.7191, +0.947
    points over the best smaller width=4)": a 0.9-point mean bump while the seeds at width 4
    spread over 8 points (the stored rows give -8.4 to +10.3; these are rounded)."""
    train = dict.fromkeys(CUT_TEST, 0.3)  # no width interpolates in 20 epochs
    (line,) = _verdict("model_wise", tuple(CUT_TEST), CUT_TEST, train)
    assert line.startswith(
        "model-wise: no significant double descent (peak at width=5, rise +0.9 points over "
        "width=4, 95% interval -8.5 to +10.3; fall +23.7 points to width=300"
    ), line


def test_a_heavy_tailed_real_peak_of_an_unbounded_metric_is_double_descent():
    """Known answer: the min-norm model's test MSE at p = n has no finite mean (Belkin, Hsu &
    Xu 2019), so its seeds spread over orders of magnitude and a t-interval of raw differences
    reaches below zero though every seed rises. An unbounded metric's rise and fall are
    tested as log ratios, seed by seed."""
    rng = np.random.default_rng(0)
    features, seeds = (1, 50, 100, 150, 200), range(12)
    spec = parse_spec(
        {
            "name": "v",
            "data": {"name": "gaussian", "dim": 200, "n_train": 100, "n_test": 100},
            "model": {"name": "raw_features", "n_features": 1},
            "grid": {"model.n_features": list(features), "seed": list(seeds)},
        }
    )
    typical = {1: 1.0, 50: 2.0, 150: 1.5, 200: 0.9}
    records = []
    for t in spec.trials:
        p = t.model.n_features
        mse = np.exp(rng.normal(6, 4)) if p == 100 else typical[p] * np.exp(rng.normal(0, 0.05))
        records.append(
            {
                "trial_id": trial_id(t),
                "status": "ok",
                "step": 1,
                "seed": t.seed,
                "model_n_features": p,
                "train_mse": 0.0 if p >= 100 else 0.5,
                "test_mse": float(mse),
            }
        )
    results = compute_kinds(pa.Table.from_pylist(records), spec)
    (line,) = KINDS["model_wise"].verdict(results["model_wise"])
    assert line.startswith("model-wise double descent: test mse peaks at n_features=100"), line
