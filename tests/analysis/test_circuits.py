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


# The frozen rules (issue 31) on traces either side of each documented cut-off: a change to a
# constant, or to the rule, fails here and has to be made (and reported) on purpose.


@pytest.mark.parametrize(("rise", "cleanup"), [(0.04, 1280.0), (0.06, 640.0)])
def test_cleanup_starts_where_the_test_accuracy_stands_five_points_above_memorisations_end(
    rise, cleanup
):
    test_acc = TEST_ACC.copy()
    test_acc[6] = TEST_ACC[2] + rise  # at memorisation's end (step 40) it stands at 0.05
    assert _phases(test_acc=test_acc)["cleanup_start"] == cleanup


@pytest.mark.parametrize(("top", "circuit"), [(7.43, None), (7.77, 160.0)])
def test_circuit_formation_needs_the_excluded_loss_to_rise_ten_percent_over_its_low(top, circuit):
    """grok_transformer_p31 seed 0's excluded loss rose from 7.00 (step 138) to 7.43 (step
    385), about 6%: no circuit formation located (docs/results.md); an 11% rise is one."""
    excluded = np.array([9.0, 8.0, 7.5, 7.2, 7.0, 7.1, 7.2, 7.3, top, 7.0])
    assert _phases(excluded_loss=excluded)["circuit_start"] == circuit


@pytest.mark.parametrize(
    ("s", "q", "label"),
    [
        (0.98, 0.6, "pizza"),  # on both pizza cut-offs
        (0.979, 0.6, "neither"),  # gradients just short of symmetric
        (0.98, 0.61, "neither"),  # too distance-dependent for a pizza, too little for a clock
        (0.979, 0.85, "clock"),  # on the clock cut-off
        (0.979, 0.849, "neither"),  # just short of distance-irrelevant
        (1.0, 0.34, "pizza"),  # clock_pizza_p31, attention rate 0 (docs/results.md)
        (1.0, 0.83, "neither"),  # the same, s 1 by construction, q between the regions
        (0.12, 0.87, "clock"),  # clock_pizza_p31, attention rate 1
        (0.65, 0.84, "neither"),  # clock_pizza_p31, attention rate 0.5, the one left out
    ],
)
def test_the_clock_and_pizza_cut_offs_give_the_documented_labels(s, q, label):
    assert algorithm(s, q, generalised=True) == label


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
