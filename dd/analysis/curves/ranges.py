"""The values each metric can take, and intervals over seeds that respect them: a seed band
or a landmark's interval never leaves its metric's range (with 2-3 seeds the t-interval of an
error near 0 would reach below it). Built-in metrics are declared here; a per-evaluation
measure declares its own columns' ranges (``dd.models.measures.base.Measure.ranges``)."""

from __future__ import annotations

import numpy as np

from dd.models.measures import MEASURES, registered

ACCURACIES = ("train_accuracy", "test_accuracy")  # derived for grokking curves
UNIT = (0.0, 1.0)
NON_NEGATIVE = (0.0, np.inf)
# the values each metric can take, declared once: seed bands are clipped to them
RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(
        (
            "train_error",
            "test_error",
            "train_error_clean",
            "train_error_noisy",
            "noisy_true_acc",
            "fourier_gini",
            *ACCURACIES,
        ),
        UNIT,
    ),
    **dict.fromkeys(
        (
            "train_mse",
            "test_mse",
            "population_risk",
            "train_loss",  # cross-entropy or squared loss
            "test_loss",
            "restricted_loss",
            "excluded_loss",
            "coef_norm",
            "param_norm",
            "p_eff_train",  # sums of squares
            "p_eff_test",
            "distance_irrelevance",  # a ratio of spreads
            "n_params",
            "n_key_freqs",
            "epoch",
            "diverged_step",
        ),
        NON_NEGATIVE,
    ),
    "grad_symmetricity": (-1.0, 1.0),  # a cosine
    **{c: r for m in MEASURES for c, r in m.ranges.items()},  # as the measures declare them
}


def metric_range(metric: str) -> tuple[float, float]:
    """The values ``metric`` can take (``RANGES``, or as a measure registered since declares
    it; a metric of a user's own that declares none: unbounded)."""
    if metric in RANGES:
        return RANGES[metric]
    declared = {c: r for m in registered() for c, r in m.ranges.items()}
    return declared.get(metric, (-np.inf, np.inf))


def t_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and the 95% Student-t interval of the mean (collapsed for fewer than 2 values)."""
    from scipy import stats  # loads with the curves only: ``dd status`` checks specs

    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
    return mean, float(mean - half), float(mean + half)


def mean_ci(
    values: np.ndarray, bounds: tuple[float, float] = (-np.inf, np.inf)
) -> tuple[float, float, float]:
    """Mean and the 95% Student-t interval over seeds, clipped to ``bounds`` (the metric's
    range: with 2-3 seeds the t-interval of an error near 0 reaches below it)."""
    mean, lo, hi = t_interval(values)
    return mean, max(lo, bounds[0]), min(hi, bounds[1])
