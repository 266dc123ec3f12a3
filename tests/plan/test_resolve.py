"""The resolve stage returns resolved configs; the parsed ones stay as they were."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from dd.plan.resolve import resolve
from dd.plan.sweep import parse_spec
from dd.spec.errors import SpecError
from dd.spec.ids import trial_id
from dd.store.schema import flatten_config


def _arrays_spec(tmp_path) -> dict:
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(
        path,
        x_train=rng.normal(size=(40, 3)).astype(np.float32),
        y_train=np.arange(40) % 2,
        x_test=rng.normal(size=(10, 3)).astype(np.float32),
        y_test=np.arange(10) % 2,
    )
    return {
        "name": "frozen",
        "data": {"name": "arrays", "path": str(path), "n_train": 20},
        "model": {"name": "mlp", "width": 4},
        "train": {"epochs": 2, "eval_points": 1, "batch_size": "full"},
        "grid": {"model.width": [2, 4], "seed": [0, 1]},
    }


def test_resolving_user_data_writes_nothing_into_the_parsed_configs(tmp_path):
    parsed = parse_spec(_arrays_spec(tmp_path))
    ids = [trial_id(t) for t in parsed.trials]
    before = [(copy.copy(vars(t)), copy.copy(vars(t.data))) for t in parsed.trials]
    resolved = resolve(parsed)
    for trial, (trial_vars, data_vars) in zip(parsed.trials, before, strict=True):
        assert vars(trial) == trial_vars and vars(trial.data) == data_vars
        assert trial.data.facts is None, "the parsed config learnt nothing"
    assert all(t.data.facts.pool_size == 40 for t in resolved.trials)
    assert all(t.data.n_classes == 2 for t in resolved.trials)
    assert [trial_id(t) for t in resolved.trials] == ids, "facts are no part of the id"
    assert resolved.trials[0].data is resolved.trials[3].data, "shared parts stay shared"


def test_an_id_is_computed_without_writing_into_the_trial(tmp_path):
    parsed = parse_spec(_arrays_spec(tmp_path)).trials[0]
    fresh = {"data": dataclasses.replace(parsed.data), "model": dataclasses.replace(parsed.model)}
    trial = dataclasses.replace(parsed, **fresh)  # parts no id has been computed of
    before = (copy.copy(vars(trial)), copy.copy(vars(trial.data)), copy.copy(vars(trial.model)))
    first = trial_id(trial)
    assert (vars(trial), vars(trial.data), vars(trial.model)) == before
    assert trial_id(trial) == first == trial_id(parsed)


def test_the_facts_are_no_column_and_no_field_a_spec_sets(tmp_path):
    mapping = _arrays_spec(tmp_path)
    resolved = resolve(parse_spec(mapping)).trials[0]
    assert resolved.data.facts is not None
    assert not [c for c in flatten_config(resolved) if "facts" in c]
    with pytest.raises(SpecError, match="data.facts: unknown field"):
        parse_spec({**mapping, "data": {**mapping["data"], "facts": {}}})
