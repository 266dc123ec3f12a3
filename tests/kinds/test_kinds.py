"""Every registered dataset kind and model kind through a tiny sweep, in-process (optax's
one-test-for-all-variants habit): the spec parsed and resolved, its packs planned and each run
by ``dd.run.worker.run_pack`` (the function a Ray worker calls) into Parquet, the rows read back.

The cases iterate the registries, so a new kind is run here as soon as it is registered; its
tiny config goes into ``DATA_CASES`` or ``MODEL_CASES`` (a kind without one fails, saying so).
Kinds that read files get tiny fabricated ones in ``tmp_path``.
"""

from __future__ import annotations

import math
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dd.datasets import registry as datasets
from dd.engine.data import load_dataset
from dd.models import registry as models
from dd.plan.packs import make_packs
from dd.plan.resolve import resolve
from dd.plan.sweep import parse_spec
from dd.run.worker import run_pack
from dd.spec.errors import SpecError
from dd.spec.ids import trial_id
from dd.store.sweep import SweepStore
from helpers import cifar_batch, idx_split, write_cifar10, write_idx_dataset, write_pickle

pytestmark = pytest.mark.slow  # each case compiles and trains a pack: 4-70 s apiece here

PACKAGE = "ddtest_kindspkg"  # a name no other test uses: its modules are cached per process

USER_CODE = '''
import flax.linen as nn
import numpy as np


class Net(nn.Module):
    """One hidden Dense+ReLU layer of width units."""
    width: int
    n_outputs: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.relu(nn.Dense(self.width)(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.n_outputs)(h)


def load(n_train=40, n_test=30, dim=5):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_train + n_test, dim)).astype(np.float32)
    y = np.argmax(x[:, :3], axis=1)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]
'''


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A package outside dd holding a Flax module and a loader, on sys.path for the test."""
    package = tmp_path / "user" / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "code.py").write_text(textwrap.dedent(USER_CODE))
    monkeypatch.syspath_prepend(str(tmp_path / "user"))
    return tmp_path / "user"


def _idx(tmp_path, name):
    write_idx_dataset(tmp_path / name, {"train": idx_split(30, 28), "t10k": idx_split(20, 28)})
    return {"name": name, "data_dir": str(tmp_path), "n_train": 20, "n_test": 20}


def _cifar10(tmp_path):
    write_cifar10(tmp_path, {"test_batch": cifar_batch(20, 10)})
    return {"name": "cifar10", "data_dir": str(tmp_path), "n_train": 10, "n_test": 20}


def _cifar100(tmp_path):
    folder = tmp_path / "cifar-100-python"
    write_pickle(folder / "train", cifar_batch(30, 100, b"fine_labels"))
    write_pickle(folder / "test", cifar_batch(20, 100, b"fine_labels"))
    return {"name": "cifar100", "data_dir": str(tmp_path), "n_train": 20, "n_test": 20}


def _arrays(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((70, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    np.savez(tmp_path / "data.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    return {"name": "arrays", "path": str(tmp_path / "data.npz"), "n_train": 30}


# each data config's name -> its tiny config (a function of tmp_path where it needs files)
DATA_CASES = {
    "mnist1d": lambda tmp: {"name": "mnist1d", "train_pool": 40, "n_train": 30, "n_test": 20},
    "digits": lambda tmp: {"name": "digits", "n_train": 40},
    "gaussian": lambda tmp: {"name": "gaussian", "dim": 6, "n_train": 20, "n_test": 30},
    "mnist": lambda tmp: _idx(tmp, "mnist"),
    "fashion_mnist": lambda tmp: _idx(tmp, "fashion_mnist"),
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "modular": lambda tmp: {"name": "modular", "p": 7, "train_fraction": 0.5},
    "arrays": _arrays,
    "python": lambda tmp: {"name": "python", "loader": f"{PACKAGE}.code:load", "n_train": 30},
}

# each model kind's name -> its tiny config; the data is the first of PAIRINGS it accepts
MODEL_CASES = {
    "raw_features": {"name": "raw_features", "n_features": 4},
    "fourier_features": {"name": "fourier_features", "n_features": 8},
    "pca_fourier_features": {"name": "pca_fourier_features", "n_features": 8, "pca_components": 2},
    "relu_features": {"name": "relu_features", "n_features": 8},
    "mlp": {"name": "mlp", "width": 8, "depth": 1},
    "cnn": {"name": "cnn", "width": 2},
    "resnet18": {"name": "resnet18", "width": 2},
    "transformer": {"name": "transformer", "width": 8, "heads": 2, "d_mlp": 16},
    "flax": {"name": "flax", "module": f"{PACKAGE}.code:Net", "width": 4},
}
PAIRINGS = ("digits", "cifar10", "modular")

TRAIN = {"optimizer": "sgd", "lr": 0.05, "batch_size": 10, "epochs": 2, "eval_points": 2}
REGRESSION = {"gaussian"}  # trained with objective mse

DATA_NAMES = [name for kind in datasets.KINDS for name in kind.names]
MODEL_NAMES = [kind.name for kind in models.KINDS]


def _case(cases: dict, name: str):
    if name not in cases:
        pytest.fail(f"registered kind {name!r} has no tiny case here: add one to this file")
    return cases[name]


def _spec(data: dict, model: dict):
    """Two seeds of ``model`` on ``data``, parsed and resolved (a SpecError if they do not pair)."""
    mapping = {"name": "kinds", "data": data, "model": model, "grid": {"seed": [0, 1]}}
    if models.Model.VARIANTS[model["name"]].SECTION == "train":
        regression = data["name"] in REGRESSION
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


@pytest.mark.parametrize("name", DATA_NAMES)
def test_every_dataset_kind_runs_a_tiny_sweep(name, tmp_path, user_package):
    data = _case(DATA_CASES, name)(tmp_path)
    spec, rows = _sweep(tmp_path, data, MODEL_CASES["mlp"])
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
    """The first data of ``PAIRINGS`` that the model's config accepts (its ``check_data``)."""
    for name in PAIRINGS:
        data = DATA_CASES[name](tmp_path)
        try:
            _spec(data, model)
        except SpecError:
            continue
        return data
    pytest.fail(f"model kind {model['name']!r} takes none of {PAIRINGS}: add a pairing")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_kind_runs_a_tiny_sweep(name, tmp_path, user_package):
    model = _case(MODEL_CASES, name)
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
