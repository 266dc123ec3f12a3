"""Every registered dataset kind and model kind, built-in or plugin, through a tiny sweep
in-process (optax's one-test-for-all-variants habit): the spec parsed and resolved, its packs
planned and each run by ``dd.run.worker.run_pack`` (the function a Ray worker calls) into
Parquet, the rows read back.

The cases iterate the registries (``load()``: built-in kinds, then installed plugins), and each
kind supplies its own tiny config (``DatasetKind.tiny``, ``Family.tiny`` / ``FeatureMap.tiny``;
a kind that reads files writes tiny fabricated ones in ``tmp_path``), so a new kind is run here
as soon as it is registered, with no edit of this file; a kind without a tiny case fails,
naming it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest

from dd.datasets import registry as datasets
from dd.engine.data import load_dataset
from dd.models import registry as models
from dd.plan.packs import make_packs
from dd.plan.resolve import resolve
from dd.plan.sweep import parse_spec
from dd.run.worker import run_pack
from dd.spec.config import Data, Model
from dd.spec.errors import SpecError
from dd.spec.ids import trial_id
from dd.store.sweep import SweepStore

# each case compiles and trains a pack of its own: 4-70 s apiece here
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fresh_programs")]

TRAIN = {"optimizer": "sgd", "lr": 0.05, "batch_size": 10, "epochs": 2, "eval_points": 2}
DATA_KINDS = {name: kind for kind in datasets.load() for name in kind.names}
MODEL_KINDS = {kind.name: kind for kind in models.load()}
PAIRINGS = ("digits", "cifar10", "modular")  # tried first, then every other data kind


def _tiny_data(name: str, folder) -> dict:
    kind = DATA_KINDS[name]
    if kind.tiny is None:
        pytest.fail(f"registered dataset kind {name!r} has no tiny case: give its KIND a tiny=")
    return kind.tiny(name, folder)


def _tiny_model(name: str) -> dict:
    kind = MODEL_KINDS[name]
    if kind.tiny is None:
        pytest.fail(f"registered model kind {name!r} has no tiny case: give its KIND a tiny=")
    return kind.tiny()


def _spec(data: dict, model: dict):
    """Two seeds of ``model`` on ``data``, parsed and resolved (a SpecError if they do not pair);
    regression data is trained with the mse objective."""
    mapping = {"name": "kinds", "data": data, "model": model, "grid": {"seed": [0, 1]}}
    if Model.VARIANTS[model["name"]].SECTION == "train":
        regression = not Data.VARIANTS[data["name"]].CLASSIFICATION
        mapping["train"] = TRAIN | ({"objective": "mse"} if regression else {})
    return resolve(parse_spec(mapping))


def _sweep(tmp_path, data: dict, model: dict):
    """The resolved spec of two seeds of ``model`` on ``data``, and its rows as dd stores them."""
    spec = _spec(data, model)
    results = tmp_path / "results"
    for pack in make_packs(list(spec.trials), spec.resources):
        run_pack(spec.name, str(results), pack, spec.resources)
    return spec, SweepStore(results, spec.name).read_results().to_pylist()


def _check_rows(spec, rows, *, trained: bool) -> None:
    """Every trial's rows are there, ok, with finite losses and errors of the right kind."""
    assert {r["trial_id"] for r in rows} == {trial_id(t) for t in spec.trials}
    per_trial = 2 if trained else 1  # eval_points (epochs 1 and 2), or the one fit
    assert len(rows) == per_trial * len(spec.trials)
    assert {r["seed"] for r in rows} == {0, 1}
    assert all(r["status"] == "ok" for r in rows)
    trial = spec.trials[0]
    classes = trial.data.n_classes
    metrics = ["train_loss", "test_loss"] if trained and classes else ["train_mse", "test_mse"]
    if classes:
        metrics += ["train_error", "test_error"]
        assert all(0.0 <= r["test_error"] <= 1.0 for r in rows)
    for metric in metrics:
        values = [r[metric] for r in rows]
        assert all(v is not None and math.isfinite(v) for v in values), (metric, values)
    if trained:
        assert sorted({r["epoch"] for r in rows}) == [1, 2]


def _module_params(trial) -> int:
    """Parameters of the trial's Flax module, counted from its initialised variables."""
    shape = (1, *trial.data.input_shape)
    x = jnp.zeros(shape, jnp.int32 if trial.data.integer_inputs else jnp.float32)
    variables = models.make_model(trial).init(jax.random.key(0), x, train=False)
    return sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("name", list(DATA_KINDS))
def test_every_dataset_kind_runs_a_tiny_sweep(name, tmp_path):
    data = _tiny_data(name, tmp_path)
    spec, rows = _sweep(tmp_path, data, _tiny_model("mlp"))
    trial = spec.trials[0]
    _check_rows(spec, rows, trained=True)
    assert all(r["data_n_train"] == trial.data.n_train for r in rows)
    facts, dataset = trial.data.facts, load_dataset(trial.data)
    assert facts.input_shape == dataset.x_test.shape[1:], "described as loaded"
    assert facts.n_classes == dataset.n_classes
    assert facts.test_size == trial.data.test_size > 0
    # a kind without test chunks tests on the rest of its pool, evaluated whole (modular)
    whole = "x_test_CTD" in datasets.kind_of(trial.data).device_arrays(dataset, trial.data)
    assert len(dataset.y_test) == (facts.pool_size if whole else facts.test_size)


def _paired_data(model: dict, tmp_path) -> dict:
    """The first data kind the model's config accepts (its ``check_data``): those of
    ``PAIRINGS`` first, then every other registered one."""
    names = [n for n in PAIRINGS if n in DATA_KINDS] + [n for n in DATA_KINDS if n not in PAIRINGS]
    for name in names:
        if DATA_KINDS[name].tiny is None:
            continue
        data = _tiny_data(name, tmp_path / name)
        try:
            _spec(data, model)
        except SpecError:
            continue
        return data
    pytest.fail(f"model kind {model['name']!r} takes no registered data kind's tiny case")


@pytest.mark.parametrize("name", list(MODEL_KINDS))
def test_every_model_kind_runs_a_tiny_sweep(name, tmp_path):
    model = _tiny_model(name)
    spec, rows = _sweep(tmp_path, _paired_data(model, tmp_path), model)
    trial = spec.trials[0]
    closed_form = trial.model.SECTION == "fit"
    _check_rows(spec, rows, trained=not closed_form)
    if closed_form:
        expected = trial.model.n_features * (trial.data.n_classes or 1)
    else:
        expected = _module_params(trial)
    assert expected > 0
    assert all(r["n_params"] == expected for r in rows)
