"""The grokking-era training settings (issue 31): each bad value is a one-line error naming
its field, and trials that leave them at their defaults keep their ids."""

from __future__ import annotations

import copy

import pytest

from dd.plan.sweep import parse_spec
from dd.spec.config import Train
from dd.spec.errors import SpecError
from dd.spec.ids import trial_id

SPEC = {
    "name": "vocab",
    "data": {"name": "modular", "p": 7, "op": "x+y", "train_fraction": 0.5},
    "model": {"name": "mlp", "width": 8},
    "train": {"optimizer": "adamw", "lr": 0.01, "batch_size": "full", "epochs": 2},
}

BAD = [
    ({"eps": 0}, "train.eps", "> 0"),
    ({"eps": "small"}, "train.eps", "must be a number"),
    ({"optimizer": "sgd", "eps": 1e-25}, "train.eps", "adam"),
    ({"objective": "stablemaxx"}, "train.objective", "mse, stablemax"),
    ({"orthogonal_grad": "yes"}, "train.orthogonal_grad", "true or false"),
    ({"grokfast": 1}, "train.grokfast", "true or false"),
    ({"grokfast": True, "grokfast_alpha": 1.0}, "train.grokfast_alpha", "< 1"),
    ({"grokfast": True, "grokfast_lamb": -1}, "train.grokfast_lamb", ">= 0"),
    ({"grokfast_lamb": 2}, "train.grokfast_lamb", "grokfast: true"),
    ({"eval_extra": {"start": 1, "stop": 2, "points": 0}}, "train.eval_extra.points", ">= 1"),
    ({"eval_extra": {"start": 5}}, "train.eval_extra.stop", ">= start 5"),
    ({"eval_extra": {"points": 50}}, "train.eval_extra.stop", "must be set"),
    ({"eval_extra": {"start": 0, "stop": 2, "points": 3}}, "train.eval_extra.start", ">= 1"),
    ({"eval_extra": {"start": 2, "stop": 1, "points": 3}}, "train.eval_extra.stop", ">= start"),
    ({"eval_extra": {"start": 1, "stop": 3, "points": 3}}, "train.eval_extra.stop", "<= epochs"),
    ({"eval_extra": {"start": 1, "stop": 2, "points": 2.5}}, "train.eval_extra.points", "integer"),
    ({"eval_extra": {"from": 1, "to": 2}}, "train.eval_extra.from", "allowed: points"),
    ({"eval_extra": {"stop": 2, "spacing": "geo"}}, "train.eval_extra.spacing", "log, linear"),
    ({"eval_extra": [1, 2]}, "train.eval_extra", "must be a mapping"),
    ({"grokfast": True, "grokfast_window": -1}, "train.grokfast_window", ">= 0"),
    ({"grokfast": True, "grokfast_window": 2.5}, "train.grokfast_window", "integer"),
    ({"grokfast_window": 5}, "train.grokfast_window", "grokfast: true"),
    (
        {"grokfast": True, "grokfast_window": 5, "grokfast_alpha": 0.9},
        "train.grokfast_alpha",
        "grokfast_window",
    ),
]

MODEL_BAD = [
    ({"init_scale": 0}, "model.init_scale", "> 0"),
    ({"init_scale": "big"}, "model.init_scale", "must be a number"),
    ({"output_scale": -1.0}, "model.output_scale", "> 0"),
]


@pytest.mark.parametrize("model,field,says", MODEL_BAD, ids=[str(m) for m, _, _ in MODEL_BAD])
def test_a_bad_scale_is_a_one_line_error_naming_its_field(model, field, says):
    mapping = copy.deepcopy(SPEC)
    mapping["model"].update(model)
    with pytest.raises(SpecError) as refused:
        parse_spec(mapping)
    text = str(refused.value)
    assert len(text.splitlines()) == 1, text
    assert field in text and says in text, text


def test_scales_and_window_at_their_defaults_keep_the_id_and_reach_it_otherwise():
    (plain,) = parse_spec(SPEC).trials
    for model, train, same in (
        ({"init_scale": 1.0, "output_scale": 1.0}, {}, True),
        ({}, {"grokfast": True, "grokfast_window": 0}, True),
        ({"init_scale": 2.0}, {}, False),
        ({"output_scale": 0.5}, {}, False),
        ({}, {"grokfast": True, "grokfast_window": 5, "grokfast_lamb": 2.0}, False),
    ):
        mapping = copy.deepcopy(SPEC)
        mapping["model"].update(model)
        mapping["train"].update(train)
        (trial,) = parse_spec(mapping).trials
        assert (trial_id(trial) == trial_id(plain)) == same, (model, train)


@pytest.mark.parametrize("train,field,says", BAD, ids=[str(t) for t, _, _ in BAD])
def test_a_bad_setting_is_a_one_line_error_naming_its_field(train, field, says):
    mapping = copy.deepcopy(SPEC)
    mapping["train"].update(train)
    with pytest.raises(SpecError) as refused:
        parse_spec(mapping)
    text = str(refused.value)
    assert len(text.splitlines()) == 1, text
    assert field in text and says in text, text


def test_the_new_settings_at_their_defaults_leave_ids_alone_and_reach_the_id_otherwise():
    (plain,) = parse_spec(SPEC).trials
    assert plain.train == Train(**{**SPEC["train"]}), "the defaults change nothing"
    for change in (
        {"eps": 1e-25},
        {"objective": "stablemax"},
        {"orthogonal_grad": True},
        {"eval_extra": {"start": 1, "stop": 2, "points": 2}},
    ):
        mapping = copy.deepcopy(SPEC)
        mapping["train"].update(change)
        (changed,) = parse_spec(mapping).trials
        assert trial_id(changed) != trial_id(plain), change
    mapping = copy.deepcopy(SPEC)
    mapping["train"].update(grokfast=True)
    (filtered,) = parse_spec(mapping).trials
    assert trial_id(filtered) == trial_id(plain), "the filter at lamb 0 computes no other number"


def test_an_empty_eval_window_is_the_default_and_keeps_the_id():
    """Written out at its defaults, the window is none: the trial's id is the plain one."""
    (plain,) = parse_spec(SPEC).trials
    for empty in ({}, {"points": 20}, {"start": 0, "stop": 0, "spacing": "linear"}):
        mapping = copy.deepcopy(SPEC)
        mapping["train"]["eval_extra"] = empty
        (same,) = parse_spec(mapping).trials
        assert trial_id(same) == trial_id(plain), empty
