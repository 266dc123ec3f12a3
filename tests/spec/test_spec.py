"""Spec loading and grid expansion: generators, zip groups, stable ids, and every bad input."""

from __future__ import annotations

import copy

import pytest
import yaml

from dd.cli import main
from dd.plan.sweep import load_spec, parse_spec
from dd.spec.errors import SpecError
from dd.spec.ids import trial_id
from helpers import TINY_GAUSSIAN


def spec_with(**changes) -> dict:
    mapping = copy.deepcopy(TINY_GAUSSIAN)
    for dotted, value in changes.items():
        node = mapping
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return mapping


def test_grid_is_the_product_of_its_axes():
    spec = parse_spec(TINY_GAUSSIAN)
    assert len(spec.trials) == 6 * 4
    assert spec.axes == ("model.n_features", "seed")
    assert {t.model.n_features for t in spec.trials} == {2, 5, 8, 12, 15, 20}


def test_generators_round_and_deduplicate_integer_fields():
    spec = parse_spec(spec_with(grid={"model.n_features": {"geomspace": [1, 20, 12]}}))
    values = [t.model.n_features for t in spec.trials]
    assert values == sorted(set(values)), "rounded geomspace values are unique and ordered"
    assert values[0] == 1 and values[-1] == 20 and len(values) < 12
    spec = parse_spec(spec_with(grid={"data.noise_var": {"linspace": [0.0, 1.0, 5]}}))
    assert [t.data.noise_var for t in spec.trials] == [0.0, 0.25, 0.5, 0.75, 1.0]
    spec = parse_spec(spec_with(grid={"seed": {"range": [3, 9, 2]}}))
    assert [t.seed for t in spec.trials] == [3, 5, 7]


def test_axis_mixes_values_and_generators():
    spec = parse_spec(spec_with(grid={"model.n_features": [{"range": [1, 4]}, 10, 3]}))
    assert [t.model.n_features for t in spec.trials] == [1, 2, 3, 10]


def test_zip_moves_axes_together():
    spec = parse_spec(
        spec_with(
            grid={
                "seed": [0, 1],
                "zip": [{"data.n_train": [5, 10, 15], "model.n_features": [4, 8, 12]}],
            }
        )
    )
    pairs = {(t.data.n_train, t.model.n_features) for t in spec.trials}
    assert pairs == {(5, 4), (10, 8), (15, 12)}
    assert len(spec.trials) == 6


def test_trial_ids_are_stable_and_content_addressed(write_spec):
    path = write_spec(TINY_GAUSSIAN)
    first = [trial_id(t) for t in load_spec(path).trials]
    second = [trial_id(t) for t in load_spec(path).trials]
    assert first == second and len(set(first)) == len(first)
    # the same trial written with explicit defaults has the same id
    explicit = spec_with(data__beta_norm2=1.0, data__noise_var=0.25, fit={"ridge": 0.0})
    assert [trial_id(t) for t in parse_spec(explicit).trials] == first
    changed = parse_spec(spec_with(data__noise_var=0.5))
    assert not set(map(trial_id, changed.trials)) & set(first)


def test_trial_ids_are_pinned_so_new_defaulted_fields_keep_stored_results():
    """An id must not move when dd gains a config field with a default (or the id scheme
    changes by accident): every stored result would be orphaned and run again."""
    trial = parse_spec(
        {
            "name": "pin",
            "data": {"name": "mnist1d", "n_train": 1000},
            "model": {"name": "mlp", "width": 16},
            "train": {"optimizer": "adam", "lr": 0.001},
        }
    ).trials[0]
    assert trial_id(trial) == "8a7d481784361837"


PINNED_IDS = [  # (spec sections, the id today's code gives it): ids of unchanged specs stay
    (
        {
            "data": {"name": "gaussian", "dim": 20, "n_train": 10, "n_test": 500},
            "model": {"name": "raw_features", "n_features": 5},
            "fit": {"ridge": 0.01},
        },
        "8060e1b1aef9a31b",
    ),
    (
        {
            "data": {"name": "modular", "p": 31, "op": "x+y", "train_fraction": 0.4},
            "model": {"name": "transformer", "width": 32, "depth": 1, "heads": 4},
            "train": {
                "optimizer": "adamw",
                "lr": 0.001,
                "weight_decay": 1.0,
                "epochs": 100,
                "batch_size": "full",
            },
        },
        "d452671c2125a960",
    ),
    (
        {
            "data": {"name": "cifar10", "n_train": 100, "n_test": 100},
            "model": {"name": "cnn", "width": 4},
            "train": {"batch_size": 50},
        },
        "3cc01eb98dd20e8c",
    ),
]


@pytest.mark.parametrize("sections,pinned", PINNED_IDS, ids=["gaussian", "modular", "cifar10"])
def test_trial_ids_of_unchanged_specs_are_pinned(sections, pinned):
    assert trial_id(parse_spec({"name": "pin", **sections}).trials[0]) == pinned


BAD_SPECS = [  # (mutation, field path the one-line error must name)
    (lambda m: m["data"].update(colour="red"), "data.colour"),
    (lambda m: m.update(extra=1), "extra"),
    (lambda m: m["data"].update(n_train="many"), "data.n_train"),
    (lambda m: m["data"].update(n_train=2.5), "data.n_train"),
    (lambda m: m["grid"].update({"model.n_features": [4, -3]}), "model.n_features"),
    (lambda m: m["grid"].update({"model.n_features": [0]}), "model.n_features"),
    (lambda m: m["model"].update(n_features=-1), "model.n_features"),
    (lambda m: m.update(data={"name": "digits", "label_noise": 1.0}), "data.label_noise"),
    (lambda m: m.update(data={"name": "mnist1d", "label_noise": -0.1}), "data.label_noise"),
    (lambda m: m.update(data={"name": "digits", "n_train": 5000}), "data.n_train"),
    (lambda m: m["grid"].update({"data.n_train": [10, 100_000_000_000]}), "data.n_train"),
    (lambda m: m.update(model={"name": "transformer9000"}), "model.name"),
    (lambda m: m.update(data={"name": "imagenet"}), "data.name"),
    (lambda m: m.update(grid={}), "grid"),
    (lambda m: m["grid"].update({"seed": []}), "grid.seed"),
    (lambda m: m["grid"].update({"model.colour": [1, 2]}), "grid.model.colour"),
    (
        lambda m: m["grid"].update({"model.depth": [1, 2]}),
        "model.depth",
    ),  # not a raw_features field
    (lambda m: m.update(train={"lr": 0.1}), "train"),  # closed-form models take fit
    (lambda m: m["grid"].update({"seed": {"arange": [0, 3]}}), "grid.seed"),
    (lambda m: m["grid"].update({"zip": [{"seed": [1, 2], "data.n_train": [3]}]}), "grid.zip[0]"),
    (lambda m: m["grid"].update({"model.n_features": [30]}), "model.n_features"),  # > dim 20
    (lambda m: m.update(name="../escape"), "name"),
    (lambda m: m.update(resources={"gpus": -1}), "resources.gpus"),
    (lambda m: m.update(fit={"ridge": -0.5}), "fit.ridge"),
    (lambda m: m["data"].update(noise_var=float("nan")), "data.noise_var"),
]


@pytest.mark.parametrize("mutate,field", BAD_SPECS, ids=[f for _, f in BAD_SPECS])
def test_bad_spec_is_one_line_exit_2_and_writes_nothing(
    mutate, field, write_spec, tmp_path, capsys
):
    mapping = copy.deepcopy(TINY_GAUSSIAN)
    mutate(mapping)
    path = write_spec(mapping)
    results = tmp_path / "results"
    code = main(["sweep", str(path), "--results", str(results)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert field in err, err
    assert not results.exists(), "nothing may be written for a bad spec"
    with pytest.raises(SpecError):
        load_spec(path)


def test_yaml_syntax_error_names_the_line(write_spec, tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ndata: {name: gaussian\nmodel: 3\n")
    assert main(["sweep", str(path), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "line" in err and len(err.strip().splitlines()) == 1


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError):
        load_spec(path)


def test_shipped_specs_load():
    from pathlib import Path

    for path in sorted(Path(__file__).parents[2].glob("sweeps/*.yaml")):
        spec = load_spec(path)
        assert spec.trials, path
        text = path.read_text()
        assert text.startswith("#") and "Run:" in text and "Expect:" in text
        assert "Time:" in text or "Cost:" in text
        yaml.safe_load(text)


def _just_outside(bound) -> list[float]:
    """Values one step past each end of ``bound`` (the end itself where it is open)."""
    out = []
    if bound.lo is not None:
        out.append(bound.lo if bound.lo_open else bound.lo - 1)
    if bound.hi is not None:
        out.append(bound.hi if bound.hi_open else bound.hi + 1)
    return out


@pytest.mark.parametrize(
    "config",
    [
        "Train()",
        "Fit()",
        "Resources()",
        "Curves()",
        "Mnist1dData()",
        "GaussianData()",
        "ModularData()",
        "MlpModel(width=4)",
        "TransformerModel()",
        "PcaFourierFeatures(n_features=8)",
        "Trial(data=Mnist1dData(), model=MlpModel(width=4))",
    ],
)
def test_every_declared_field_constraint_is_checked_and_names_its_field(config):
    """Constraints are declared on the fields (dd.spec.fields.bounded / one_of) and checked in one
    place (dd.spec.fields.validate): each refuses a value just outside it, naming the field."""
    import dataclasses

    from dd.datasets import registry as datasets
    from dd.models import registry as models
    from dd.plan.sweep import Curves, Resources
    from dd.spec import config as c, fields

    datasets.load(), models.load()  # fill the VARIANTS
    kinds = {k.__name__: k for k in [*c.Data.VARIANTS.values(), *c.Model.VARIANTS.values()]}
    names = {**vars(c), **kinds, "Resources": Resources, "Curves": Curves}
    valid = eval(config, names)
    fields.validate(valid)
    declared = fields._declared(type(valid))
    assert declared, "the class declares constraints"
    for name, metadata in declared:
        bad_values = _just_outside(metadata["bound"]) if "bound" in metadata else ["not-a-choice"]
        for bad in bad_values:
            with pytest.raises(SpecError) as refused:
                fields.validate(dataclasses.replace(valid, **{name: bad}))
            assert refused.value.path == name, (name, bad)
