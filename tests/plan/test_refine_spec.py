"""The ``refine:`` section is validated like every other: one-line errors naming the field."""

from __future__ import annotations

import copy

import pytest

from dd.plan.refine import Refine, extended
from dd.plan.sweep import apply_overrides, parse_spec
from dd.spec.errors import SpecError
from helpers import TINY_GAUSSIAN


def spec_with(refine, **extra):
    mapping = copy.deepcopy(TINY_GAUSSIAN)
    mapping["refine"] = refine
    mapping.update(extra)
    return mapping


def test_a_target_is_read_with_its_defaults():
    spec = parse_spec(spec_with({"axis": "model.n_features", "resolution": 1}))
    assert spec.refine == (
        Refine(axis="model.n_features", find="threshold", resolution=1.0, max_trials=60),
    )
    assert spec.refine[0].integer


def test_a_list_holds_several_targets_and_no_section_holds_none():
    spec = parse_spec(
        spec_with([{"axis": "model.n_features"}, {"axis": "model.n_features", "find": "peak"}])
    )
    assert [t.find for t in spec.refine] == ["threshold", "peak"]
    assert parse_spec(copy.deepcopy(TINY_GAUSSIAN)).refine == ()


@pytest.mark.parametrize(
    "refine, path, words",
    [
        ({"axis": "model.depth"}, "refine.axis", "not a numeric grid axis"),
        ({"axis": "seed"}, "refine.axis", "model.n_features"),
        ({"axis": "model.n_features", "find": "valley"}, "refine.find", "threshold, peak"),
        ({"axis": "model.n_features", "resolution": 0}, "refine.resolution", "> 0"),
        ({"axis": "model.n_features", "max_trials": 0}, "refine.max_trials", ">= 1"),
        ({"axis": "model.n_features", "scale": "log", "resolution": 1}, "refine.resolution", "> 1"),
        ({"axis": "model.n_features", "find": "boundary"}, "refine.find", "classification"),
        ({"find": "peak"}, "refine.axis", "required"),
        ({"axis": "model.n_features", "budget": 3}, "refine.budget", "unknown field"),
        ([{"axis": "model.n_features"}, {"axis": 3}], "refine[1].axis", "string"),
        ([], "refine", "empty"),
        ("model.width", "refine", "mapping"),
    ],
)
def test_bad_targets_are_one_line_errors_naming_the_field(refine, path, words):
    with pytest.raises(SpecError) as err:
        parse_spec(spec_with(refine))
    assert err.value.path == path
    assert words in str(err.value) and "\n" not in str(err.value)


def test_an_axis_in_a_zip_group_is_refused():
    mapping = spec_with({"axis": "model.n_features"})
    mapping["grid"] = {
        "zip": [{"model.n_features": [2, 5], "data.n_train": [10, 12]}],
        "seed": [0],
    }
    with pytest.raises(SpecError, match="in a zip group") as err:
        parse_spec(mapping)
    assert err.value.path == "refine.axis"


def test_set_overrides_a_field_of_the_section():
    mapping = apply_overrides(spec_with({"axis": "model.n_features"}), ["refine.max_trials=7"])
    assert parse_spec(mapping).refine[0].max_trials == 7


def test_added_values_extend_the_grid_axis_after_its_own():
    mapping = spec_with({"axis": "model.n_features"})
    spec = parse_spec(extended(mapping, {"model.n_features": [10, 11]}))
    assert sorted({t.model.n_features for t in spec.trials}) == [2, 5, 8, 10, 11, 12, 15, 20]
    assert len(spec.trials) == 8 * 4
    assert mapping["grid"]["model.n_features"] == [2, 5, 8, 12, 15, 20]  # not changed


def test_added_seeds_extend_the_grid_at_their_axis_values_only():
    """A round that adds seeds (issue 30: seeds where noise dominates a peak) stores them as an
    ``also`` block of the grid: the new seeds at the peak and its neighbours, every other
    width keeps the grid's seeds."""
    mapping = spec_with({"axis": "model.n_features", "find": "peak"})
    added = {"model.n_features": [{"at": [8, 12], "seed": [4, 5]}]}
    spec = parse_spec(extended(mapping, {"model.n_features": [10]}, added))
    seeds: dict[int, set] = {}
    for t in spec.trials:
        seeds.setdefault(t.model.n_features, set()).add(t.seed)
    assert seeds[8] == seeds[12] == {0, 1, 2, 3, 4, 5}
    assert seeds[2] == seeds[10] == {0, 1, 2, 3}
    assert len(spec.trials) == 7 * 4 + 2 * 2
    assert "also" not in mapping["grid"]  # not changed


@pytest.mark.parametrize(
    "also, path, words",
    [
        ([{"model.depth": [2]}], "grid.also[0].model.depth", "not a grid axis"),
        ([], "grid.also", "non-empty list"),
        ([{"seed": [9]}, "x"], "grid.also[1]", "mapping of grid axes"),
    ],
)
def test_a_bad_also_block_is_a_one_line_error_naming_it(also, path, words):
    mapping = copy.deepcopy(TINY_GAUSSIAN)
    mapping["grid"]["also"] = also
    with pytest.raises(SpecError) as err:
        parse_spec(mapping)
    assert err.value.path == path and words in str(err.value) and "\n" not in str(err.value)
