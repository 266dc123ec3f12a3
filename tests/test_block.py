"""Block-diagonal dense packs (``dd.block``): a mixed-width pack of narrow conv nets trained as
one dense network gives each replica the numbers it has alone, and the execution plan
(``resources.execution``, the measured cost table) picks or forces it."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dd import block, costs
from dd.device_data import draw_setups, to_device
from dd.data import load_dataset
from dd.errors import SpecError
from dd.evaluate import EVAL_CHUNK
from dd.models.base import apply_model
from dd.models.registry import make_model
from dd.packs import make_packs, pack_key
from dd.resolve import resolve
from dd.spec import parse_spec
from dd.step import Program, init_replicas, mean_loss, take_batches
from dd.train import execution_plan, replica_values, train_pack

WIDTHS = (1, 3, 4, 8)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """64 training and 16 test 8x8 RGB images of 3 classes, as an ``arrays`` file."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("block") / "images.npz"
    np.savez(
        path,
        x_train=rng.normal(size=(64, 8, 8, 3)).astype(np.float32),
        y_train=rng.integers(0, 3, 64),
        x_test=rng.normal(size=(16, 8, 8, 3)).astype(np.float32),
        y_test=np.arange(16) % 3,
    )
    return str(path)


def _trials(images: str, model: str, **train):
    spec = resolve(
        parse_spec(
            {
                "name": "b",
                "data": {"name": "arrays", "path": images, "n_train": 32, "label_noise": 0.25},
                "model": {"name": model, "width": 1},
                # SGD: Adam would turn the rounding noise of the zero gradient of a conv bias
                # before BatchNorm into whole steps, whichever the plan
                "train": {
                    "optimizer": "sgd",
                    "momentum": 0.9,
                    "weight_decay": 5e-3,
                    "batch_size": 16,
                    "epochs": 2,
                    "eval_points": 2,
                }
                | train,
                "grid": {
                    "zip": [
                        {
                            "model.width": list(WIDTHS),
                            "seed": [0, 1, 2, 3],
                            "train.lr": [0.05, 0.1, 0.02, 0.08],
                        }
                    ]
                },
            }
        )
    )
    (pack,) = make_packs(list(spec.trials), spec.resources)
    return list(pack.trials), pack_key(pack.trials[0])


def _state(trials, key):
    """Every replica's setup and initial state (leading R axis), and its program."""
    dataset = load_dataset(key.data)
    data = to_device(dataset, key.data, EVAL_CHUNK)
    program = Program(key, max(t.data.n_train for t in trials), dataset.n_classes, False)
    v = replica_values(trials)
    setups = draw_setups(
        data, v["seed"], v["n_train"], v["label_noise"], v["lr"], v["weight_decay"], n_rows=32
    )
    return program, data, setups, init_replicas(program, data, setups, v["width"])


@pytest.mark.parametrize("model", ["cnn", pytest.param("resnet18", marks=pytest.mark.slow)])
def test_block_logits_and_gradients_are_each_replicas_own(images, model):
    trials, key = _trials(images, model)
    program, data, setups, replicas = _state(trials, key)
    orders = jnp.tile(jnp.arange(32), (len(trials), 1))
    x_RBD, y_RB, w_RB, _ = take_batches(program, data, setups, replicas, orders, 0)
    state = (replicas.params, replicas.batch_stats, replicas.opt_state)
    parts = [block.own_part(key, state, r, w) for r, w in enumerate(WIDTHS)]
    param_shapes, stat_shapes = block.block_shapes(key, WIDTHS)
    stats = block.assemble([s for _, s, _ in parts], stat_shapes)
    n_out = 3

    def block_losses(own):
        logits, new_stats = apply_model(
            block.block_model(key, WIDTHS),
            block.assemble(own, param_shapes),
            stats,
            block.stack_inputs(x_RBD),
            True,
        )
        return [
            mean_loss(program, logits[:, r * n_out : (r + 1) * n_out], y_RB[r], w_RB[r])
            for r in range(len(WIDTHS))
        ], (logits, new_stats)

    def total(own):
        losses, aux = block_losses(own)
        return sum(losses), aux

    grads, (logits, new_stats) = jax.jit(jax.grad(total, has_aux=True))([p for p, _, _ in parts])
    block_params = block.assemble([p for p, _, _ in parts], param_shapes)
    own_stats = block.split(new_stats, [s for _, s, _ in parts])
    for r, w in enumerate(WIDTHS):
        alone = make_model(block.at_width(key, w))
        params, batch_stats, _ = parts[r]

        def loss_alone(p, r=r, batch_stats=batch_stats, alone=alone):
            lg, st = apply_model(alone, p, batch_stats, x_RBD[r], True)
            return mean_loss(program, lg, y_RB[r], w_RB[r]), (lg, st)

        g, (lg, st) = jax.jit(jax.grad(loss_alone, has_aux=True))(params)
        np.testing.assert_allclose(logits[:, 3 * r : 3 * r + 3], lg, rtol=1e-5, atol=1e-5)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads[r], g
        )
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), own_stats[r], st
        )
    # every weight outside the diagonal blocks is exactly zero
    offsets = np.cumsum((0,) + WIDTHS)
    kernel = np.asarray(block_params["conv_1" if model == "cnn" else "stem"]["kernel"])
    for r in range(len(WIDTHS)):
        cols = slice(*(offsets[r : r + 2] * (2 if model == "cnn" else 1)))
        rows = slice(*(offsets[r : r + 2])) if model == "cnn" else slice(3 * r, 3 * r + 3)
        off = kernel[..., :, cols].copy()
        off[..., rows, :] = 0.0
        assert not off.any()
        assert kernel[..., rows, cols].any()


@pytest.mark.parametrize("model", ["cnn", pytest.param("resnet18", marks=pytest.mark.slow)])
def test_a_block_pack_trains_each_trial_as_it_trains_alone(images, model, tmp_path):
    trials, key = _trials(images, model)
    files = [tmp_path / f"block{r}.msgpack" for r in range(len(trials))]
    rows = train_pack(trials, key, execution="block", param_files=files)
    for r, trial in enumerate(trials):
        alone = train_pack([trial], key, execution="vmap", param_files=[tmp_path / "alone.msgpack"])
        for got, want in zip(rows[r], alone[0], strict=True):
            assert got.keys() == want.keys() and got["epoch"] == want["epoch"]
            for k in ("train_loss", "test_loss", "param_norm"):
                if k in want:
                    assert got[k] == pytest.approx(want[k], rel=1e-4, abs=1e-6), k
        assert files[r].read_bytes() != b""
        from dd.checkpoint import load_params

        mine, theirs = load_params(files[r]), load_params(tmp_path / "alone.msgpack")
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), mine, theirs
        )
