"""Property-based: random mutations of valid specs are refused naming the field, or accepted
and expanded to the same trial ids on every load."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings, strategies as st

from dd.plan.sweep import parse_spec
from dd.spec.errors import SpecError
from dd.spec.ids import trial_id

BASES = [
    {
        "name": "lin",
        "data": {"name": "gaussian", "dim": 20, "n_train": 10, "n_test": 50},
        "model": {"name": "raw_features", "n_features": 5},
        "fit": {"ridge": 0.0},
        "grid": {"seed": {"range": [0, 3]}},
    },
    {
        "name": "net",
        "data": {"name": "mnist1d", "n_train": 100, "label_noise": 0.1},
        "model": {"name": "mlp", "width": 8, "depth": 2},
        "train": {"optimizer": "sgd", "lr": 0.01, "batch_size": 10, "epochs": 3},
        "grid": {"seed": [0, 1], "model.width": {"geomspace": [2, 64, 5]}},
    },
]
NUMERIC = {
    "data.dim",
    "data.n_train",
    "data.n_test",
    "model.n_features",
    "model.width",
    "model.depth",
    "fit.ridge",
    "data.label_noise",
    "train.lr",
    "train.batch_size",
    "train.epochs",
}

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _leaves(mapping: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in mapping.items():
        if key == "grid":
            continue
        path = f"{prefix}{key}"
        out += _leaves(value, path + ".") if isinstance(value, dict) else [path]
    return out


def _set(mapping: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        mapping = mapping[p]
    mapping[leaf] = value


@pytest.mark.slow
@settings(max_examples=300, deadline=None, derandomize=True)
@given(base=st.sampled_from(BASES), data=st.data())
def test_every_mutation_is_refused_by_name_or_expands_stably(base, data):
    path = data.draw(st.sampled_from(_leaves(base)))
    value = data.draw(junk)
    mapping = copy.deepcopy(base)
    _set(mapping, path, value)
    try:
        spec = parse_spec(copy.deepcopy(mapping))
    except SpecError as e:
        message = str(e)
        assert "\n" not in message and e.path, message
        if path in NUMERIC and (value is None or isinstance(value, (str, list, dict, bool))):
            assert e.path == path, (path, value, message)  # a wrong type names its own field
        else:
            assert e.path.split(".")[0] in {path.split(".")[0], "grid", "model"}, (path, message)
        return
    again = parse_spec(copy.deepcopy(mapping))
    assert [trial_id(t) for t in spec.trials] == [trial_id(t) for t in again.trials]
    assert len({trial_id(t) for t in spec.trials}) == len(spec.trials)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    key=st.text(min_size=1, max_size=8).filter(lambda k: "." not in k),
    section=st.sampled_from(["data", "model", "train", "resources", "curves"]),
)
@pytest.mark.slow
def test_unknown_keys_are_refused_by_their_path(key, section):
    mapping = copy.deepcopy(BASES[1])
    if key in mapping.get(section, {}) or key in ("name",):
        return
    mapping.setdefault(section, {})[key] = 1
    try:
        parse_spec(mapping)
    except SpecError as e:
        assert e.path in (f"{section}.{key}", f"{section}.name"), str(e)
    else:
        raise AssertionError(f"{section}.{key} was accepted")
