"""Issue 31's remaining settings: the Grokfast-MA window (a program setting), the per-replica
init and output scales (Omnigrok; lazy-to-rich), the gradient-weight cosine measure, and
``train.precision: float64`` (x64 scoped to its packs). Each trial of a pack computes what it
computes alone."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dd.engine.data import load_dataset
from dd.engine.device_data import to_device
from dd.engine.optim import grokfast_ma
from dd.engine.options import PackOptions
from dd.engine.programs import prepare
from dd.engine.step import Program
from dd.engine.train import replica_values, train_pack
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec

MODULAR = {
    "name": "scales_tiny",
    "data": {"name": "modular", "p": 7, "op": "x+y", "train_fraction": 0.5},
    "model": {"name": "mlp", "width": 16},
    "train": {
        "optimizer": "adamw",
        "lr": 0.01,
        "batch_size": "full",
        "epochs": 8,
        "eval_points": 3,
    },
}


def _packs(train: dict, grid: dict, model: dict | None = None):
    spec = parse_spec(
        {
            **MODULAR,
            "model": {**MODULAR["model"], **(model or {})},
            "train": {**MODULAR["train"], **train},
            "grid": grid,
        }
    )
    return make_packs(list(spec.trials), spec.resources)


def _same(rows_a, rows_b, exact: bool):
    for a, b in zip(rows_a, rows_b, strict=True):
        for metric, value in b.items():
            if "time" in metric or "pack" in metric or "program" in metric:
                continue
            if exact:
                assert np.array_equal(a[metric], value, equal_nan=True), metric
            else:
                np.testing.assert_allclose(a[metric], value, rtol=2e-5, atol=1e-6, err_msg=metric)


def test_grokfast_ma_passes_g_until_the_window_is_full_then_adds_lamb_times_its_mean():
    """Lee et al.'s ``gradfilter_ma`` (warmup on): the last ``window`` gradients, current
    included; the filter acts once the window is full."""
    window, lamb = 3, 2.0
    transform = grokfast_ma(window, lamb)
    params = jnp.zeros(2)
    state = transform.init(params)
    gs = [jnp.asarray(v) for v in ([1.0, -2.0], [3.0, 0.5], [-1.0, 4.0], [2.0, 2.0])]
    outs = []
    for g in gs:
        out, state = transform.update(g, state, params)
        outs.append(np.asarray(out))
    np.testing.assert_allclose(outs[0], gs[0])
    np.testing.assert_allclose(outs[1], gs[1])
    np.testing.assert_allclose(outs[2], gs[2] + lamb * (gs[0] + gs[1] + gs[2]) / 3, rtol=1e-6)
    np.testing.assert_allclose(outs[3], gs[3] + lamb * (gs[1] + gs[2] + gs[3]) / 3, rtol=1e-6)
    off, _ = grokfast_ma(window, 0.0).update(gs[0], grokfast_ma(window, 0.0).init(params))
    np.testing.assert_array_equal(off, gs[0])


@pytest.mark.slow
def test_a_windowed_grokfast_pack_sweeps_lamb_and_each_trial_computes_the_same_alone():
    train = {"grokfast": True, "grokfast_window": 3}
    (pack,) = _packs(train, {"train.grokfast_lamb": [0.0, 2.0]})
    (ema,) = _packs({"grokfast": True}, {"train.grokfast_lamb": [0.0, 2.0]})
    assert pack.key != ema.key, "the window is part of the program"
    assert pack.trial_ids[1] != ema.trial_ids[1], "a moving average is another trial"
    together = train_pack(list(pack.trials), pack.key)
    assert together[0][-1]["train_loss"] != together[1][-1]["train_loss"], "the filter acts"
    ema_rows = train_pack(list(ema.trials), ema.key)
    assert together[1][-1]["train_loss"] != ema_rows[1][-1]["train_loss"], "MA is not EMA"
    _same(together[0], ema_rows[0], exact=False)  # lamb 0: no filter, whatever its kind
    for i in range(2):
        _same(train_pack([pack.trials[i]], pack.key)[0], together[i], exact=False)


def _initial_params(pack):
    trials = list(pack.trials)
    dataset = load_dataset(pack.key.data)
    program = Program(
        trial=pack.key,
        n_rows=max(t.data.n_train for t in trials),
        n_classes=dataset.n_classes,
        augment=False,
    )
    data = to_device(dataset, pack.key.data, 256)
    values = jax.tree.map(jnp.asarray, replica_values(trials))
    return prepare(program, data, values)[1].params


@pytest.mark.slow
def test_init_scale_multiplies_each_replicas_initial_parameters_in_one_pack():
    (pack,) = _packs({}, {"model.init_scale": [2.0, 4.0]})
    assert len(pack.trials) == 2, "one program for both scales"
    params = _initial_params(pack)
    for leaf in jax.tree.leaves(params):
        np.testing.assert_array_equal(np.asarray(leaf[1]), 2.0 * np.asarray(leaf[0]))


@pytest.mark.slow
def test_init_and_output_scales_sweep_in_one_pack_and_each_trial_computes_the_same_alone():
    grid = {"model.init_scale": [3.0, 2.0], "model.output_scale": [2.0, 0.5]}
    (pack,) = _packs({}, grid)
    assert len(pack.trials) == 4
    (plain,) = _packs({}, {"seed": [0]})
    assert pack.key != plain.key, "a scaled program multiplies; the plain one does not"
    together = train_pack(list(pack.trials), pack.key)
    scales = [(t.model.init_scale, t.model.output_scale) for t in pack.trials]
    losses = {s: rows[-1]["train_loss"] for s, rows in zip(scales, together, strict=True)}
    assert len(set(losses.values())) == 4, "each scale changes the numbers"
    for i in range(4):
        _same(train_pack([pack.trials[i]], pack.key)[0], together[i], exact=False)


@pytest.mark.slow
def test_output_scale_multiplies_the_logits_the_loss_sees():
    """At init (no step taken) the test loss of a scale-s replica is that of logits s z."""
    train = {"epochs": 1, "eval_points": 1, "lr": 1e-12}
    (pack,) = _packs(train, {"model.output_scale": [1e-6, 2.0]})
    (plain,) = _packs(train, {"seed": [0]})
    rows = train_pack(list(pack.trials), pack.key)
    np.testing.assert_allclose(rows[0][-1]["test_loss"], np.log(7), rtol=1e-4)  # near 0
    plain_loss = train_pack(list(plain.trials), plain.key)[0][-1]["test_loss"]
    assert abs(plain_loss - np.log(7)) > 1e-3 and rows[1][-1]["test_loss"] != plain_loss


@pytest.mark.slow
def test_grad_weight_cosine_is_a_cosine_and_is_computed_the_same_alone():
    train = {"measures": "grad_weight_cosine", "weight_decay": 0.1}
    (pack,) = _packs(train, {"seed": [0, 1]})
    together = train_pack(list(pack.trials), pack.key)
    for r, rows in enumerate(together):
        values = [row["grad_weight_cosine"] for row in rows]
        assert all(-1.0 <= v <= 1.0 for v in values), values
        assert len(set(values)) > 1, "it moves during training"
        _same(train_pack([pack.trials[r]], pack.key)[0], rows, exact=False)


@pytest.mark.slow
def test_grad_weight_cosine_is_the_cosine_of_the_full_batch_loss_gradient():
    from dd.engine.evaluate import evaluate

    (pack,) = _packs({"measures": "grad_weight_cosine"}, {"seed": [0]})
    trials = list(pack.trials)
    dataset = load_dataset(pack.key.data)
    n_rows = trials[0].data.n_train
    program = Program(trial=pack.key, n_rows=n_rows, n_classes=dataset.n_classes, augment=False)
    data = to_device(dataset, pack.key.data, 256)
    setups, reps = prepare(program, data, jax.tree.map(jnp.asarray, replica_values(trials)))
    got = float(evaluate(program, data, setups, reps)["grad_weight_cosine"][0])

    from dd.engine.optim import loss_fn
    from dd.models.base import apply_model
    from dd.models.registry import make_model

    params = jax.tree.map(lambda a: a[0], reps.params)
    x = data.x_pool_PD[setups.index_N[0]]
    y = setups.y_N[0]

    def loss(p):
        logits, _ = apply_model(make_model(pack.key), p, {}, x, False)
        return jnp.mean(loss_fn(pack.key.train, logits, y, dataset.n_classes))

    g = jnp.concatenate([a.ravel() for a in jax.tree.leaves(jax.grad(loss)(params))])
    w = jnp.concatenate([a.ravel() for a in jax.tree.leaves(params)])
    want = float(jnp.dot(g, w) / (jnp.linalg.norm(g) * jnp.linalg.norm(w)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_scales_at_one_are_the_defaults_and_the_scaled_model_is_another_trial():
    (plain,) = _packs({}, {"seed": [0]})
    (scaled,) = _packs({}, {"seed": [0]}, model={"init_scale": 2.0})
    assert plain.key != scaled.key, "the scaled program"
    assert plain.trial_ids != scaled.trial_ids
    assert dataclasses.replace(scaled.trials[0].model, init_scale=1.0) == plain.trials[0].model


# --------------------------------------------------------------------------- float64


def test_float64_trials_get_their_own_pack_and_record_their_precision():
    packs = _packs({}, {"train.precision": ["float32", "float64"], "seed": [0, 1]})
    assert sorted(p.key.train.precision for p in packs) == ["float32", "float64"]
    for pack in packs:
        assert {t.train.precision for t in pack.trials} == {pack.key.train.precision}


@pytest.mark.slow
def test_a_float64_pack_computes_each_trial_alone_bit_for_bit():
    (pack,) = _packs({"precision": "float64"}, {"train.lr": [0.01, 0.03]})
    together = train_pack(list(pack.trials), pack.key)
    assert together[0][-1]["train_loss"] != together[1][-1]["train_loss"]
    for i in range(2):
        _same(train_pack([pack.trials[i]], pack.key)[0], together[i], exact=True)


@pytest.mark.slow
def test_a_float64_trial_keeps_float64_parameters_and_computes_other_numbers(tmp_path):
    """Were x64 silently off, the stored parameters would be float32 and the rows those of
    the float32 trial."""
    from dd.engine.checkpoint import load_params

    rows = {}
    for precision in ("float32", "float64"):
        (pack,) = _packs({"precision": precision, "save_params": True}, {"seed": [0]})
        path = tmp_path / f"{precision}.msgpack"
        rows[precision] = train_pack(list(pack.trials), pack.key, PackOptions(param_files=[path]))[
            0
        ]
        dtypes = {np.asarray(a).dtype for a in jax.tree.leaves(load_params(path))}
        assert dtypes == {np.dtype(precision)}
    f32, f64 = rows["float32"][-1]["train_loss"], rows["float64"][-1]["train_loss"]
    assert f64 != f32, "another computation"
    assert f64 == pytest.approx(f32, rel=1e-4), "of the same trial"


@pytest.mark.slow
def test_a_float64_checkpoint_holds_float64_state_and_resumes_to_the_same_rows(tmp_path):
    import flax.serialization

    from dd.store.checked import read_checked

    (pack,) = _packs({"precision": "float64"}, {"seed": [0]})
    whole = train_pack(list(pack.trials), pack.key)
    path = tmp_path / "pack.ckpt"
    first = train_pack(
        list(pack.trials), pack.key, PackOptions(checkpoint=path, checkpoint_every=3)
    )
    state = flax.serialization.msgpack_restore(read_checked(path))["replicas"]
    floats = {a.dtype for a in jax.tree.leaves(state) if a.dtype.kind == "f"}
    assert floats == {np.dtype("float64")}, "parameters and optimizer state"
    resumed = train_pack(
        list(pack.trials), pack.key, PackOptions(checkpoint=path, checkpoint_every=3)
    )
    _same(first[0], whole[0], exact=True)
    _same(resumed[0], whole[0], exact=True)


@pytest.mark.slow
def test_a_float32_pack_after_a_float64_pack_computes_what_it_did_before():
    (f32,) = _packs({}, {"seed": [0, 1]})
    (f64,) = _packs({"precision": "float64"}, {"seed": [0, 1]})
    before = train_pack(list(f32.trials), f32.key)
    train_pack(list(f64.trials), f64.key)
    after = train_pack(list(f32.trials), f32.key)
    for a, b in zip(after, before, strict=True):
        _same(a, b, exact=True)
    assert not jax.config.jax_enable_x64, "x64 stays scoped to the float64 pack"
    assert jnp.zeros(1).dtype == jnp.float32


@pytest.mark.slow
def test_a_float64_trial_collapses_fewer_training_examples_than_in_float32():
    """At init (no step taken), logits times 200: float32's softmax rounds the label's
    probability to exactly 1 for more training examples than float64's (Prieto et al. 2025's
    softmax collapse, which float64 delays)."""
    train = {"epochs": 1, "eval_points": 1, "lr": 1e-12, "measures": "softmax_collapse"}
    collapsed = {}
    for precision in ("float32", "float64"):
        (pack,) = _packs({**train, "precision": precision}, {"seed": [0]}, {"output_scale": 200.0})
        collapsed[precision] = train_pack(list(pack.trials), pack.key)[0][-1]["softmax_collapse"]
    assert collapsed["float32"] > collapsed["float64"], collapsed


@pytest.mark.parametrize("name", ["mlp", "transformer"])
@pytest.mark.slow
def test_a_float64_trial_starts_from_the_float32_trials_draws_widened(name):
    from dd.models.precision import x64

    params = {}
    for precision in ("float32", "float64"):
        (pack,) = _packs({"precision": precision}, {"seed": [0]}, {"name": name})
        with x64(precision):
            params[precision] = [np.asarray(a) for a in jax.tree.leaves(_initial_params(pack))]
    for f32, f64 in zip(params["float32"], params["float64"], strict=True):
        assert f64.dtype == np.float64
        np.testing.assert_array_equal(f64, f32.astype(np.float64))
