"""Nanda's phases and Zhong's clock / pizza label, on hand-made evaluations whose answers are
known (``dd.analysis.curves.circuits``)."""

from __future__ import annotations

import numpy as np
import pytest

from dd.analysis.curves.circuits import algorithm, nanda_phases

STEPS = np.array([10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120], float)
TRAIN_ACC = np.array([0.1, 0.5, 0.995, 1, 1, 1, 1, 1, 1, 1])
TEST_ACC = np.array([0.05, 0.06, 0.05, 0.04, 0.05, 0.06, 0.2, 0.6, 0.995, 1])
TEST_LOSS = np.array([3.4, 3.6, 4.5, 5.0, 4.8, 4.6, 3.1, 1.0, 0.1, 0.01])  # peaks at 80
RESTRICTED = np.array([3.4, 3.4, 3.3, 3.0, 2.5, 1.8, 1.0, 0.3, 0.05, 0.01])
EXCLUDED = np.array([3.0, 1.0, 0.2, 0.5, 0.3, 0.9, 2.0, 4.0, 6.0, 7.0])  # lowest at 160


def _phases(**changes):
    arrays = dict(
        steps=STEPS,
        train_acc=TRAIN_ACC,
        test_acc=TEST_ACC,
        test_loss=TEST_LOSS,
        restricted_loss=RESTRICTED,
        excluded_loss=EXCLUDED,
    )
    return nanda_phases(**(arrays | changes), level=0.99)


def test_a_grokking_run_shows_memorisation_then_circuit_formation_then_cleanup():
    phases = _phases()
    assert phases == {"memorisation_end": 40.0, "circuit_start": 160.0, "cleanup_start": 640.0}
    assert phases["circuit_start"] < phases["cleanup_start"], "Nanda's ordering"


def test_no_cleanup_is_seen_where_the_test_accuracy_never_jumps():
    phases = _phases(test_acc=np.minimum(TEST_ACC, 0.2))
    assert phases["cleanup_start"] is None
    assert phases["memorisation_end"] == 40.0 and phases["circuit_start"] == 160.0


def test_nothing_is_located_before_the_training_set_is_fit():
    assert _phases(train_acc=np.minimum(TRAIN_ACC, 0.9)) == dict.fromkeys(
        ("memorisation_end", "circuit_start", "cleanup_start")
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"excluded_loss": np.minimum.accumulate(EXCLUDED)},  # never rises
        {"restricted_loss": RESTRICTED[::-1]},  # rises instead of falling
        {"restricted_loss": None, "excluded_loss": None},  # an op without these measures
    ],
    ids=["excluded-flat", "restricted-rises", "not-measured"],
)
def test_circuit_formation_needs_the_excluded_loss_to_rise_and_the_restricted_to_fall(changes):
    phases = _phases(**changes)
    assert phases["circuit_start"] is None
    assert phases["memorisation_end"] == 40.0


@pytest.mark.parametrize(
    ("s", "q", "generalised", "label"),
    [
        (0.995, 0.2, True, "pizza"),
        (0.6, 0.97, True, "clock"),
        (0.9, 0.7, True, "neither"),  # between the clusters
        (0.995, 0.95, True, "neither"),  # symmetric gradients and distance-irrelevant
        (0.6, 0.97, False, "neither"),  # did not generalise: no algorithm to name
        (float("nan"), 0.97, True, "neither"),  # not measured (not x+y)
    ],
)
def test_clock_and_pizza_are_told_apart_by_symmetricity_and_distance_irrelevance(
    s, q, generalised, label
):
    assert algorithm(s, q, generalised) == label


def test_the_algorithm_figure_stacks_each_cells_labels():
    import pyarrow as pa

    from dd.analysis.curves.phase_figure import plot_algorithms

    grok = pa.Table.from_pylist(
        [
            {
                "trial_id": str(i),
                "model_attention_rate": rate,
                "seed": i,
                "t_memorise": 1.0,
                "algorithm": label,
            }
            for i, (rate, label) in enumerate(
                [(0.0, "pizza"), (0.0, "neither"), (1.0, "clock"), (1.0, "clock")]
            )
        ]
    )

    class Spec:
        name = "cp"

    ax = plot_algorithms(grok, Spec()).axes[0]
    heights = {
        (round(p.get_x() + p.get_width() / 2), p.get_facecolor()[:3], p.get_height())
        for p in ax.patches
    }
    clock, pizza = (0.122, 0.467, 0.706), (1.0, 0.498, 0.055)
    assert (1, clock, 2.0) in {(x, tuple(round(c, 3) for c in col), h) for x, col, h in heights}
    assert (0, pizza, 1.0) in {(x, tuple(round(c, 3) for c in col), h) for x, col, h in heights}
