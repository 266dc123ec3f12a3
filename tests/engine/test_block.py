"""Block-diagonal dense packs (``dd.engine.block``): a mixed-width pack of narrow conv nets trained
as
one dense network gives each replica the numbers it has alone, and the execution plan
(``resources.execution``, the measured cost table) picks or forces it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dd.engine import block, costs
from dd.engine.data import load_dataset
from dd.engine.device_data import draw_setups, to_device
from dd.engine.evaluate import EVAL_CHUNK
from dd.engine.options import PackOptions
from dd.engine.step import Program, init_replicas, mean_loss, take_batches
from dd.engine.train import execution_plan, replica_values, train_pack
from dd.models.base import apply_model
from dd.models.registry import make_model
from dd.plan.packs import make_packs, pack_key
from dd.plan.resolve import resolve
from dd.plan.sweep import parse_spec
from dd.spec.errors import SpecError

pytestmark = pytest.mark.usefixtures("fresh_programs")  # ResNet-18 packs: 2.6 GB otherwise

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
                # SGD unless a test asks for Adam (test_block_vmapped_and_sequential_plans_agree...)
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


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn", "resnet18"])
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
        jax.tree.map(  # float32 sums in another order: a resnet gradient of 1e-2 moves 3e-6
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), grads[r], g
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


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn", "resnet18"])
def test_a_block_pack_trains_each_trial_as_it_trains_alone(images, model, tmp_path):
    trials, key = _trials(images, model)
    files = [tmp_path / f"block{r}.msgpack" for r in range(len(trials))]
    rows = train_pack(trials, key, PackOptions(execution="block", param_files=files))
    for r, trial in enumerate(trials):
        alone = train_pack(
            [trial], key, PackOptions(execution="vmap", param_files=[tmp_path / "alone.msgpack"])
        )
        for got, want in zip(rows[r], alone[0], strict=True):
            assert got.keys() == want.keys() and got["epoch"] == want["epoch"]
            for k in ("train_loss", "test_loss", "param_norm"):
                if k in want:
                    assert got[k] == pytest.approx(want[k], rel=1e-4, abs=1e-6), k
        assert files[r].read_bytes() != b""
        from dd.engine.checkpoint import load_params

        mine, theirs = load_params(files[r]), load_params(tmp_path / "alone.msgpack")
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), mine, theirs
        )


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_block_vmapped_and_sequential_plans_agree_under_adam_and_sgd(images, optimizer):
    """A mixed-width pack of narrow CNNs ends with the same test loss (1e-4 relative) whichever
    plan trains it, under Adam too: no conv bias before BatchNorm (its zero gradient's rounding
    noise became Adam steps), and on CPU a vmap-plan pack maps its replicas, so it computes the
    sequential plan's numbers (vmapped, one replica of four ended 5.2e-4 off under Adam)."""
    lr = {"adam": {"lr": 0.003, "momentum": 0.0}, "sgd": {}}[optimizer]
    trials, key = _trials(images, "cnn", optimizer=optimizer, epochs=3, eval_points=1, **lr)
    final = {
        plan: [
            rows[-1]["test_loss"] for rows in train_pack(trials, key, PackOptions(execution=plan))
        ]
        for plan in ("block", "vmap", "sequential")
    }
    for plan in ("block", "sequential"):
        np.testing.assert_allclose(final[plan], final["vmap"], rtol=1e-4, err_msg=plan)
    if jax.default_backend() == "cpu":  # mapped replicas: the one-replica program's numbers
        assert final["vmap"] == final["sequential"]


def test_resources_execution_is_checked_and_block_needs_a_family_with_blocks(images):
    base = {
        "name": "b",
        "data": {"name": "arrays", "path": images, "n_train": 32},
        "model": {"name": "mlp", "width": 4},
        "train": {"batch_size": 16},
    }
    with pytest.raises(SpecError, match=r"resources\.execution: unknown value 'dense'; allowed"):
        parse_spec(base | {"resources": {"execution": "dense"}})
    with pytest.raises(SpecError, match=r"resources\.execution: block packs need .*mlp has none"):
        resolve(parse_spec(base | {"resources": {"execution": "block"}}))
    assert resolve(parse_spec(base | {"resources": {"execution": "vmap"}})).trials


def test_the_plan_comes_from_the_cost_table_or_else_the_measured_rule(images):
    trials, key = _trials(images, "cnn")
    table = {
        "step_seconds": {
            "cnn": {
                "sequential": [{"width": 16, "replicas": 1, "seconds": 0.010}],
                "vmap": [
                    {"width": 16, "replicas": 2, "seconds": 0.018},
                    {"width": 16, "replicas": 8, "seconds": 0.096},
                ],
                "block": [
                    {"sum_width": 16, "replicas": 4, "seconds": 0.012},
                    {"sum_width": 64, "replicas": 4, "seconds": 0.064},
                ],
            }
        }
    }
    # 4 of k = 1, 3, 4, 8: sequential 40 ms, vmap 36 (2 replicas' entry), block 12 (sum 16,
    # the least seconds per unit of width)
    assert costs.choose(table, "cnn", 16, [1, 3, 4, 8]) == costs.Choice("block", 16)
    # 4 of k = 16: block cut in 4 parts of sum 16, 48 ms; vmap 36 wins
    assert costs.choose(table, "cnn", 16, [16] * 4) == ("vmap", 0)
    assert costs.choose(table, "cnn", 16, [1, 3], ("sequential",)) == ("sequential", 0)
    assert costs.choose(table, "cnn", 32, [1, 3]) is None
    assert costs.choose(table, "mlp", 16, [1, 3]) is None
    assert costs.cut([1, 3, 4, 8, 16, 2], 16) == [[0, 1, 2, 3], [4], [5]]
    assert costs.cut([1, 3, 4], 0) == [[0, 1, 2]]
    assert costs.kind_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert costs.load_table("no such device") == {}
    # no table: conv nets one by one on a CPU, vmapped on a GPU up to k = 32
    unknown = {"device_kind": "no such device"}
    widths = [1, 3, 4, 8]
    assert execution_plan(key, widths, platform="cpu", **unknown) == ("host", "sequential", 0)
    assert execution_plan(key, widths, platform="gpu", **unknown) == ("scan", "vmap", 0)
    wide = block.at_width(key, 64)
    assert execution_plan(wide, [64] * 4, platform="gpu", **unknown).layout == "sequential"
    assert execution_plan(key, widths, "block", platform="gpu") == ("scan", "block", 0)
    # the shipped CPU table holds block steps, but on a CPU auto leaves block to those who
    # force it (its compiles per width mix lost end to end); off the CPU the table decides
    assert execution_plan(key, widths, platform="cpu", device_kind="cpu").layout == "sequential"
    assert execution_plan(key, widths, platform="gpu", device_kind="cpu").layout == "block"
    with pytest.raises(ValueError, match="resources.execution must be auto or one of"):
        execution_plan(key, widths, "dense")


def test_the_dry_run_names_each_packs_plan(images, tmp_path):
    from dd import api

    spec = {
        "name": "b",
        "data": {"name": "arrays", "path": images, "n_train": 32},
        "model": {"name": "cnn", "width": 1},
        "train": {"batch_size": 16, "epochs": 1},
        "grid": {"model.width": [1, 3, 4, 8, 24]},
        "resources": {"execution": "block"},
    }
    plan = api.plan(spec, tmp_path)
    # k <= 16 share the 16-wide program, k = 24 has its own: two packs, each block-packed
    assert plan.packs.column("plan").to_pylist() == ["block, host loop"] * 2
    assert "\n  cnn: 2 packs block, host loop" in str(plan)
