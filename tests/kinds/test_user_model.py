"""A user's own Flax module and dataset, living outside dd, through the whole path: configs,
load-time checks (one line, exit 2, nothing written), packs, `dd sweep`, `dd.api.sweep`,
curves, `dd query` and `dd report`."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dd.cli import main
from dd.plan.resolve import resolve
from dd.plan.sweep import apply_overrides, parse_spec
from dd.spec.errors import DDError, SpecError
from dd.spec.ids import trial_id
from helpers import run_dd

PACKAGE = "ddtest_userpkg"  # a name no other test uses: its modules are cached per process

MODELS = '''
import flax.linen as nn
import jax.numpy as jnp


class WideNet(nn.Module):
    """depth hidden Dense+ReLU layers of width units."""
    width: int
    n_outputs: int
    depth: int = 1
    dtype: object = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = x.reshape(x.shape[0], -1)
        for _ in range(self.depth):
            h = nn.relu(nn.Dense(self.width, dtype=self.dtype)(h))
        return nn.Dense(self.n_outputs, dtype=self.dtype)(h)


class NoTrainArgument(nn.Module):
    width: int
    n_outputs: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.n_outputs)(nn.relu(nn.Dense(self.width)(x)))


class ConvNet(nn.Module):
    width: int
    n_outputs: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.Conv(self.width, (3,))(x[..., None])
        h = nn.BatchNorm(use_running_average=not train)(h)
        return nn.Dense(self.n_outputs)(h.mean(1))


class NeedsDropout(nn.Module):
    width: int
    n_outputs: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.Dropout(0.5, deterministic=not train)(nn.Dense(self.width)(x))
        return nn.Dense(self.n_outputs)(h)


class WrongShape(nn.Module):
    width: int
    n_outputs: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dense(self.n_outputs + 1)(x)


class KeepsCounters(nn.Module):
    width: int
    n_outputs: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        calls = self.variable("counters", "calls", lambda: jnp.zeros((), jnp.int32))
        calls.value += 1
        return nn.Dense(self.n_outputs)(nn.Dense(self.width)(x))


class Tokens(nn.Module):
    """Integer inputs: an embedding of each token, averaged."""
    width: int
    n_outputs: int
    vocab: int = 10

    @nn.compact
    def __call__(self, tokens, train: bool = False):
        assert tokens.dtype == jnp.int32, tokens.dtype
        return nn.Dense(self.n_outputs)(nn.Embed(self.vocab, self.width)(tokens).mean(1))


def narrow_factory(width, n_outputs, **options):
    if width > 16:
        raise ValueError("only up to 16 wide")
    return WideNet(width=width, n_outputs=n_outputs, **options)


def not_a_module(width, n_outputs):
    return 42


from flax import nnx


class NnxNet(nnx.Module):
    def __init__(self, width, n_outputs, rngs=None):
        self.dense = nnx.Linear(6, n_outputs, rngs=rngs or nnx.Rngs(0))

    def __call__(self, x):
        return self.dense(x)
'''

BROKEN = "raise RuntimeError('this module is broken at import')\n"

DATA = """
import numpy as np


def load(n_train=240, n_test=160, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, dim)).astype(np.float32)
    y = np.argmax(x[:, :3], axis=1)
    return {"x_train": x[:n_train], "y_train": y[:n_train],
            "x_test": x[n_train:], "y_test": y[n_train:]}


def regression(n_train=120, n_test=80, dim=5):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n_train + n_test, dim))
    y = x @ np.arange(1, dim + 1) / dim
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def fails(**options):
    raise ValueError("no data today")


def not_arrays():
    return "x_train"
"""


@pytest.fixture(scope="session")
def user_package(tmp_path_factory) -> Path:
    """A package outside dd (models, loaders) and an .npz from its loader; on sys.path for
    the session, on PYTHONPATH for subprocesses (``user_env``)."""
    root = tmp_path_factory.mktemp("userpkg")
    package = root / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(textwrap.dedent(MODELS))
    (package / "data.py").write_text(textwrap.dedent(DATA))
    (package / "broken.py").write_text(BROKEN)
    sys.path.insert(0, str(root))
    from ddtest_userpkg.data import load

    np.savez(root / "data.npz", **load())
    yield root
    sys.path.remove(str(root))


def user_env(root: Path) -> dict[str, str]:
    """The environment of a subprocess that imports the user's package (and its Ray
    workers: a local Ray instance's workers inherit the driver's PYTHONPATH)."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(root)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        ),
    }


def loaded(mapping: dict):
    """A spec as ``dd sweep`` loads it for running: parsed, then resolved (its user code
    imported and checked, its arrays read)."""
    return resolve(parse_spec(mapping))


def spec_for(root: Path, **changes) -> dict:
    spec = {
        "name": "user",
        "data": {"name": "arrays", "path": str(root / "data.npz"), "n_train": 200},
        "model": {
            "name": "flax",
            "module": f"{PACKAGE}.models:WideNet",
            "width": 8,
            "options": {"depth": 1},
        },
        "train": {"optimizer": "sgd", "lr": 0.1, "batch_size": 50, "epochs": 4, "eval_points": 2},
    }
    return {**spec, **changes}


@pytest.mark.slow
def test_a_user_module_is_built_counted_and_examined(user_package):
    from dd.models.registry import kind_of, make_model, n_params

    spec = loaded(
        spec_for(user_package, grid={"model.width": [4, 8], "model.options.depth": [1, 2]})
    )
    by_config = {(t.model.width, json.loads(t.model.options)["depth"]): t for t in spec.trials}
    # 6 inputs, 3 classes: (6+1)w + (depth-1)(w+1)w + (w+1)3
    for (w, depth), trial in by_config.items():
        assert n_params(trial) == 7 * w + (depth - 1) * (w + 1) * w + 3 * (w + 1)
        assert kind_of(trial).name == "flax" and not kind_of(trial).convolutional(trial)
    conv = loaded(
        spec_for(
            user_package, model={"name": "flax", "module": f"{PACKAGE}.models:ConvNet", "width": 4}
        )
    ).trials[0]
    assert kind_of(conv).convolutional(conv), "its forward pass holds a convolution"
    assert n_params(conv) == (3 * 4 + 4) + 2 * 4 + (4 * 3 + 3), "BatchNorm stats not counted"
    plain = loaded(
        spec_for(
            user_package,
            model={"name": "flax", "module": f"{PACKAGE}.models:NoTrainArgument", "width": 5},
        )
    ).trials[0]
    import jax
    import jax.numpy as jnp

    variables = make_model(plain).init(jax.random.key(0), jnp.zeros((2, 6)), train=True)
    assert set(variables["params"]) == {"Dense_0", "Dense_1"}, "wrapped, its names unchanged"


def test_dtype_goes_to_modules_that_take_one_and_tokens_arrive_as_int32(user_package, tmp_path):
    import jax.numpy as jnp

    from dd.models.registry import make_model

    bf16 = loaded(
        spec_for(user_package, train={"precision": "bf16", "batch_size": 50, "epochs": 1})
    ).trials[0]
    assert make_model(bf16).dtype == jnp.bfloat16
    plain = loaded(
        spec_for(
            user_package,
            model={"name": "flax", "module": f"{PACKAGE}.models:NoTrainArgument", "width": 5},
            train={"precision": "bf16", "batch_size": 50, "epochs": 1},
        )
    ).trials[0]
    assert make_model(plain).inner.__class__.__name__ == "NoTrainArgument", "no dtype given"
    rng = np.random.default_rng(0)
    tokens = {
        "x_train": rng.integers(0, 10, (100, 4)),
        "y_train": rng.integers(0, 3, 100),
        "x_test": rng.integers(0, 10, (30, 4)),
        "y_test": rng.integers(0, 3, 30),
    }
    np.savez(tmp_path / "tokens.npz", **tokens)
    trial = loaded(
        spec_for(
            user_package,
            model={"name": "flax", "module": f"{PACKAGE}.models:Tokens", "width": 6},
            data={"name": "arrays", "path": str(tmp_path / "tokens.npz"), "n_train": 100},
        )
    ).trials[0]
    assert trial.data.integer_inputs and trial.data.input_shape == (4,)


def test_options_are_hashable_json_text_with_a_column_each(user_package):
    from dd.store.schema import flatten_config

    trial = loaded(
        spec_for(
            user_package,
            model={
                "name": "flax",
                "module": f"{PACKAGE}.models:WideNet",
                "width": 8,
                "options": {"depth": 2},
            },
        )
    ).trials[0]
    same = loaded(
        spec_for(
            user_package,
            model={
                "name": "flax",
                "module": f"{PACKAGE}.models:WideNet",
                "width": 8,
                "options": {"depth": 2.0},
            },
        )
    ).trials[0]
    assert {trial: 1}[same] == 1 and trial_id(trial) == trial_id(same)
    flat = flatten_config(trial)
    assert flat["model_options"] == '{"depth":2}' and flat["model_options_depth"] == 2
    with pytest.raises(SpecError, match="model.options.width: dd passes width"):
        loaded(
            spec_for(
                user_package,
                model={"name": "flax", "module": "a:B", "width": 1, "options": {"width": 3}},
            )
        )
    with pytest.raises(SpecError, match="model.options: must be a mapping"):
        loaded(
            spec_for(
                user_package, model={"name": "flax", "module": "a:B", "width": 1, "options": [1]}
            )
        )


MODEL_ERRORS = {
    "nowhere": ("ddtest_nowhere.models:Net", "cannot import ddtest_nowhere.models"),
    "broken": (f"{PACKAGE}.broken:Net", "RuntimeError: this module is broken at import"),
    "missing": (f"{PACKAGE}.models:Nope", "has no 'Nope'"),
    "factory raises": (
        f"{PACKAGE}.models:narrow_factory",
        "raised ValueError: only up to 16 wide (grid point model.width=32)",
    ),
    "not a module": (f"{PACKAGE}.models:not_a_module", "returned a int, not a flax.linen"),
    "flax.nnx": (
        f"{PACKAGE}.models:NnxNet",
        "NnxNet is a flax.nnx Module; dd takes flax.linen Modules (see docs/plugins.md)",
    ),
    "needs dropout": (f"{PACKAGE}.models:NeedsDropout", "needs the random stream 'dropout'"),
    "wrong shape": (f"{PACKAGE}.models:WrongShape", "returns shape (2, 4)"),
    "other variables": (f"{PACKAGE}.models:KeepsCounters", "keeps variables in 'counters'"),
    "__main__": ("__main__:Net", "cannot import a notebook's or script's __main__"),
    "not an import path": ("models.Net", "must be 'package.module:name'"),
}


@pytest.mark.parametrize("case", MODEL_ERRORS)
def test_a_bad_plugin_is_one_line_exit_2_and_nothing_written(
    case, user_package, write_spec, tmp_path, capsys
):
    module, message = MODEL_ERRORS[case]
    spec = spec_for(
        user_package,
        model={"name": "flax", "module": module, "width": 8},
        grid={"model.width": [8, 32]},
    )
    status = main(["sweep", str(write_spec(spec)), "--results", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("dd: error: model.module: "), err
    assert module in err and message in err, err
    assert not (tmp_path / "res").exists()


def _npz(path: Path, **changes) -> str:
    from ddtest_userpkg.data import load

    arrays = {**load(), **changes}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


def _x(*index_value, n=240, dim=6):
    x = np.zeros((n, dim), np.float32)
    for index, value in index_value:
        x[index] = value
    return x


DATA_ERRORS = {
    "missing file": (
        lambda p: {"name": "arrays", "path": str(p / "nope.npz"), "n_train": 10},
        "nope.npz: cannot read",
    ),
    "not an npz": (
        lambda p: {"name": "arrays", "path": _text(p / "x.npz"), "n_train": 10},
        "not a readable .npz file",
    ),
    "missing array": (
        lambda p: {"name": "arrays", "path": _npz(p / "a.npz", y_test=None), "n_train": 10},
        "no array 'y_test'",
    ),
    "shapes disagree": (
        lambda p: {
            "name": "arrays",
            "n_train": 10,
            "path": _npz(p / "a.npz", x_test=np.zeros((160, 7), np.float32)),
        },
        "x_test examples have shape (7,) but x_train's have (6,)",
    ),
    "one label per example": (
        lambda p: {
            "name": "arrays",
            "n_train": 10,
            "path": _npz(p / "a.npz", y_train=np.zeros(239, int)),
        },
        "y_train must have shape (240,)",
    ),
    "NaN": (
        lambda p: {
            "name": "arrays",
            "n_train": 10,
            "path": _npz(p / "a.npz", x_train=_x(((3, 2), np.nan))),
        },
        "x_train holds NaN or Inf",
    ),
    "Inf": (
        lambda p: {
            "name": "arrays",
            "n_train": 10,
            "path": _npz(p / "a.npz", y_test=np.full(160, np.inf)),
        },
        "y_test holds NaN or Inf",
    ),
    "text dtype": (
        lambda p: {
            "name": "arrays",
            "n_train": 10,
            "path": _npz(p / "a.npz", y_train=np.array(["a"] * 240)),
        },
        "y_train has dtype <U1",
    ),
    "negative label": (
        lambda p: {
            "name": "arrays",
            "n_train": 10,
            "path": _npz(p / "a.npz", y_test=-np.ones(160, int)),
        },
        "labels must lie in 0..2, found -1..2",
    ),
    "label out of range": (
        lambda p: {"name": "arrays", "n_train": 10, "classes": 2, "path": _npz(p / "a.npz")},
        "labels must lie in 0..1, found 0..2",
    ),
    "labels not from 0": (
        lambda p: {
            "name": "arrays",
            "n_train": 10,
            "path": _npz(p / "a.npz", y_train=np.arange(240) % 10 + 1, y_test=np.ones(160, int)),
        },
        "labels run 1..10 but class 0 is missing",
    ),
    "labels with a gap": (
        lambda p: {
            "name": "arrays",
            "n_train": 10,
            "path": _npz(p / "a.npz", y_train=np.arange(240) % 3 * 2, y_test=np.zeros(160, int)),
        },
        "labels run 0..4 but classes 1, 3 are missing",
    ),
    "n_train above the pool": (
        lambda p: {"name": "arrays", "n_train": 241, "path": _npz(p / "a.npz")},
        "data.n_train: 241 is larger than the 240 examples",
    ),
    "noise on regression": (
        lambda p: {
            "name": "python",
            "loader": f"{PACKAGE}.data:regression",
            "n_train": 10,
            "label_noise": 0.1,
        },
        "label noise needs class labels",
    ),
    "loader does not import": (
        lambda p: {"name": "python", "loader": "ddtest_nowhere:load", "n_train": 10},
        "cannot import ddtest_nowhere",
    ),
    "loader raises": (
        lambda p: {
            "name": "python",
            "loader": f"{PACKAGE}.data:fails",
            "n_train": 10,
            "options": {"day": 1},
        },
        "raised ValueError: no data today",
    ),
    "loader returns no arrays": (
        lambda p: {"name": "python", "n_train": 10, "loader": f"{PACKAGE}.data:not_arrays"},
        "returned str",
    ),
}


def _text(path: Path) -> str:
    path.write_text("not a zip file")
    return str(path)


@pytest.mark.parametrize("case", DATA_ERRORS)
def test_bad_arrays_are_one_line_exit_2_and_nothing_written(
    case, user_package, write_spec, tmp_path, capsys
):
    data, message = DATA_ERRORS[case]
    spec = spec_for(user_package, data=data(tmp_path))
    spec["train"] = {**spec["train"], "batch_size": 10}  # the arrays are the only problem
    status = main(["sweep", str(write_spec(spec)), "--results", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("dd: error: data."), err
    assert message in err, err
    assert not (tmp_path / "res").exists()


def test_the_task_comes_from_the_targets_or_the_spec(user_package, tmp_path):
    regression = {"name": "python", "loader": f"{PACKAGE}.data:regression", "n_train": 100}
    with pytest.raises(SpecError, match="regression dataset; use objective: mse"):
        loaded(spec_for(user_package, data=regression))
    trial = loaded(
        spec_for(
            user_package, data=regression, train={"objective": "mse", "batch_size": 20, "epochs": 2}
        )
    ).trials[0]
    assert not trial.data.CLASSIFICATION and trial.data.n_classes == 0
    as_floats = _npz(tmp_path / "f.npz", y_train=np.zeros(240), y_test=np.ones(160))
    stated = loaded(
        spec_for(
            user_package,
            data={"name": "arrays", "path": as_floats, "n_train": 50, "task": "classification"},
        )
    )
    assert stated.trials[0].data.n_classes == 2, "whole-valued floats taken as labels 0, 1"


def test_whole_valued_float_labels_are_class_labels_when_the_task_is_auto(user_package, tmp_path):
    """Labels saved as floats 0.0..9.0 (a common numpy habit) are classes, not a regression
    on class numbers."""
    from ddtest_userpkg.data import load

    arrays = load()
    floats = _npz(
        tmp_path / "f.npz",
        y_train=arrays["y_train"].astype(np.float64),
        y_test=arrays["y_test"].astype(np.float32),
    )
    (trial,) = loaded(
        spec_for(user_package, data={"name": "arrays", "path": floats, "n_train": 50})
    ).trials
    assert trial.data.CLASSIFICATION and trial.data.n_classes == 3


@pytest.mark.slow
def test_closed_form_models_fit_user_data_too(user_package):
    from dd.engine.closed_form import fit_pack
    from dd.plan.packs import make_packs

    spec = loaded(
        {
            "name": "cf",
            "data": {
                "name": "python",
                "n_train": 100,
                "loader": f"{PACKAGE}.data:load",
                "label_noise": 0.1,
            },
            "model": {"name": "relu_features", "n_features": 40},
            "grid": {"seed": [0, 1]},
        }
    )
    (pack,) = make_packs(list(spec.trials), spec.resources)
    rows = fit_pack(pack.padded_trials(), pack.n_rows)
    assert len(rows) == 2 and rows[0]["n_params"] == 40 * 3
    assert 0 <= rows[0]["test_error"] < 0.8 and rows[0]["train_error"] < rows[0]["test_error"]


def test_overrides_set_any_path_and_grid_axes_with_dotted_names():
    mapping = {
        "name": "s",
        "data": {"name": "digits"},
        "model": {"name": "mlp"},
        "grid": {"seed": [0]},
    }
    out = apply_overrides(
        mapping,
        [
            "train.epochs=100",
            "grid.seed={range: [0, 5]}",
            "grid.model.width=[8, 16]",
            "model.depth=3",
            "name=t",
        ],
    )
    assert out["train"] == {"epochs": 100} and out["model"] == {"name": "mlp", "depth": 3}
    assert out["grid"] == {"seed": {"range": [0, 5]}, "model.width": [8, 16]}
    assert mapping["grid"] == {"seed": [0]}, "the mapping given is left as it was"
    spec = loaded(out)
    assert spec.name == "t" and len(spec.trials) == 10
    with pytest.raises(SpecError, match="--set: 'epochs': give PATH=VALUE"):
        apply_overrides(mapping, ["epochs"])
    with pytest.raises(SpecError, match="--set train.epochs: '\\[1' is not a YAML value"):
        apply_overrides(mapping, ["train.epochs=[1"])
    with pytest.raises(SpecError, match="train.epochs: must be an integer"):
        loaded(apply_overrides(mapping, ["train.epochs=many"]))


def test_plan_lists_trials_and_packs_and_writes_nothing(user_package, tmp_path):
    from dd import api

    spec = spec_for(user_package, grid={"model.width": [4, 8], "seed": [0, 1, 2]})
    plan = api.plan(spec, tmp_path / "res", overrides=["grid.data.n_train=[100, 200]"])
    assert plan.trials.num_rows == 12 and not any(plan.trials["stored"].to_pylist())
    assert plan.packs.num_rows == 2, "one program per width; seeds and n_train are arrays"
    assert set(plan.packs["family"].to_pylist()) == {"flax"}
    assert sorted(plan.packs["n_trials"].to_pylist()) == [6, 6]
    assert str(plan).splitlines() == [
        "user: 12 trials, 0 already stored; 12 to run in 2 packs",
        "  flax: 2 packs vmap, scan loop",
    ]
    assert not (tmp_path / "res").exists()
    import yaml

    text = api.plan(yaml.safe_dump({**spec, "name": "y"}))
    assert text.spec.name == "y", "a YAML text is a spec too"
    with pytest.raises(DDError, match="nope.yaml: no such spec file"):
        api.plan("nope.yaml")


def test_progress_writes_plain_lines_where_stderr_is_no_terminal(capsys):
    from dd.run.progress import Progress

    with Progress(total=4, label="s") as progress:
        progress.advance(2)
        progress.log("a message")
        progress.advance(2)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err, "no terminal control codes in a notebook"
    assert "s: 4/4 trials done" in err and "a message" in err


@pytest.mark.slow
def test_a_user_trial_alone_equals_the_trial_in_a_pack(user_package):
    from dd.engine.train import train_pack
    from dd.plan.packs import make_packs

    spec = loaded(
        spec_for(
            user_package,
            data={
                "name": "python",
                "loader": f"{PACKAGE}.data:load",
                "options": {"n_train": 240},
                "n_train": 200,
            },
            grid={
                "seed": [0, 1],
                "data.n_train": [100, 200],
                "data.label_noise": [0.0, 0.2],
                "train.lr": [0.1, 0.05],
            },
        )
    )
    (pack,) = make_packs(list(spec.trials), spec.resources)
    assert len(pack.trials) == 16, "seed, n_train, noise and lr vary inside one pack"
    key = pack.key
    together = train_pack(list(pack.trials), key)
    for i in (0, 9, 15):
        alone = train_pack([pack.trials[i]], key)[0]
        for row_alone, row_pack in zip(alone, together[i], strict=True):
            for metric, value in row_alone.items():
                np.testing.assert_allclose(
                    row_pack[metric], value, rtol=2e-5, atol=1e-6, err_msg=f"trial {i} {metric}"
                )


def _run(args: list[str], root: Path, cwd: Path) -> subprocess.CompletedProcess:
    return run_dd(*args, env=user_env(root), cwd=cwd)


@pytest.mark.slow
@pytest.mark.ray
def test_dd_sweep_query_and_report_run_a_user_module_and_dataset(user_package, tmp_path):
    """Through the command line in a fresh process: PYTHONPATH reaches the local Ray workers;
    the npz path is relative to the current directory; the stored spec is the one that ran."""
    import shutil

    import yaml

    shutil.copy(user_package / "data.npz", tmp_path / "mine.npz")
    spec = spec_for(
        user_package,
        data={"name": "arrays", "path": "mine.npz", "n_train": 200},
        grid={"model.width": [2, 8], "seed": [0, 1]},
    )
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    done = _run(
        [
            "sweep",
            "spec.yaml",
            "--results",
            "res",
            "--cpus",
            "2",
            "--set",
            "train.epochs=3",
            "--set",
            "grid.data.label_noise=[0.0, 0.1]",
        ],
        user_package,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "user: ran 8 trials" in done.stderr and "figure: " in done.stdout
    stored = yaml.safe_load((tmp_path / "res" / "user" / "spec.yaml").read_text())
    assert stored["train"]["epochs"] == 3 and stored["grid"]["data.label_noise"] == [0.0, 0.1]
    query = _run(
        [
            "query",
            "SELECT count(DISTINCT trial_id) AS n, max(epoch) AS e, "
            "min(model_name) AS m FROM trials",
            "--sweep",
            "user",
            "--results",
            "res",
            "--format",
            "json",
        ],
        user_package,
        tmp_path,
    )
    assert query.returncode == 0, query.stderr
    rows = [json.loads(line) for line in query.stdout.splitlines()]
    assert rows == [{"n": 8, "e": 3, "m": "flax"}]
    report = _run(["report", "user", "--results", "res"], user_package, tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    assert (tmp_path / "res" / "user" / "report.html").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.ray
def test_api_sweep_runs_a_mapping_and_returns_what_the_cli_prints(user_package, tmp_path):
    """As a notebook would: dd.api.sweep with a dict, then the rows through dd.api."""
    spec = spec_for(
        user_package,
        data={
            "name": "python",
            "loader": f"{PACKAGE}.data:load",
            "options": {"seed": 3},
            "n_train": 200,
        },
        grid={"model.width": [2, 4], "seed": [0, 1]},
    )
    code = textwrap.dedent(f"""
        import json, sys
        from dd import api
        result = api.sweep({spec!r}, {str(tmp_path / "res")!r}, cpus=2,
                           overrides=["grid.model.options.depth=[1, 2]"])
        print(json.dumps({{"text": str(result), "code": result.exit_code,
                          "run": result.report.trials_run, "figures": len(result.figures)}}))
        rows = api.load("user", {str(tmp_path / "res")!r})
        print(json.dumps(sorted(set(rows["model_options_depth"].to_pylist()))))
        print(json.dumps(sorted(api.curves("user", {str(tmp_path / "res")!r}))))
    """)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=user_env(user_package),
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out, depths, kinds = (json.loads(line) for line in done.stdout.strip().splitlines()[-3:])
    assert out["code"] == 0 and out["run"] == 8 and out["figures"] >= 1
    assert "user: ran 8 trials" in out["text"] and "results: " in out["text"]
    assert depths == [1, 2] and "model_wise" in kinds
    assert "\x1b" not in done.stderr, "progress without terminal control codes off a terminal"
    assert "user: 8/8 trials done" in done.stderr


def test_a_spec_dict_is_copied_not_changed(user_package):
    from dd import api

    spec = spec_for(user_package)
    kept = copy.deepcopy(spec)
    api.plan(spec, overrides=["train.epochs=7"])
    assert spec == kept


def test_an_error_raised_on_a_worker_comes_back_whole():
    import pickle

    error = pickle.loads(pickle.dumps(SpecError("model.module", "a:B: cannot import a")))
    assert isinstance(error, SpecError) and str(error) == "model.module: a:B: cannot import a"
    assert error.path == "model.module" and error.exit_code == 2


def test_workers_that_cannot_import_the_module_fail_their_packs_with_the_reason(
    ray_local, user_package, tmp_path
):
    """The package is on this process's sys.path only, which Ray's workers do not share."""
    from dd.run.execute import run_sweep
    from dd.store.sweep import SweepStore

    spec = loaded(spec_for(user_package, train={"batch_size": 50, "epochs": 1, "eval_points": 1}))
    report = run_sweep(spec, tmp_path, quiet=True)
    assert len(report.failed_packs) == 1
    (failure,) = SweepStore(tmp_path, "user").failures()
    assert f"cannot import {PACKAGE}.models" in failure["reason"], failure["reason"]


HANGS = "import time\nwhile True:\n    time.sleep(60)\n"


@pytest.mark.parametrize("package", ["hangs", "raises", "absent"])
@pytest.mark.slow
def test_dd_status_imports_no_user_code(package, tmp_path):
    """Commands that only read results never import the user's module or run their loader:
    with a module that hangs or raises on import, or no package on PYTHONPATH at all,
    ``dd status`` still counts the sweep's trials."""
    from dd.store.sweep import SweepStore

    root = tmp_path / "src"
    (root / "ddtest_reader").mkdir(parents=True)
    (root / "ddtest_reader" / "__init__.py").write_text("")
    body = {"hangs": HANGS, "raises": BROKEN, "absent": ""}[package]
    for name in ("models", "data"):
        (root / "ddtest_reader" / f"{name}.py").write_text(body)
    spec = {
        "name": "reader",
        "data": {"name": "python", "loader": "ddtest_reader.data:load", "n_train": 100},
        "model": {"name": "flax", "module": "ddtest_reader.models:Net", "width": 8},
        "train": {"batch_size": 50},
        "grid": {"seed": [0, 1, 2]},
    }
    SweepStore(tmp_path / "res", "reader").write_spec(spec)
    env = user_env(root) if package != "absent" else dict(os.environ)
    done = subprocess.run(
        [sys.executable, "-m", "dd", "status", "reader", "--results", str(tmp_path / "res")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "reader: 3 trials planned: 0 done" in done.stdout, done.stdout
