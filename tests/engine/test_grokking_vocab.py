"""The grokking-era optimizer and loss vocabulary (issue 31): StableMax cross-entropy, the
perpendicular gradient, the Grokfast EMA filter (per replica, in one pack, lamb 0 = no filter)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dd.engine.optim import grokfast_ema, loss_fn, orthogonal_grad
from dd.engine.train import train_pack
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from dd.spec.config import Train


@pytest.mark.slow
def test_stablemax_loss_is_the_formula_and_keeps_a_gradient_where_softmax_saturates():
    z = jnp.asarray([[2.0, -1.0, 0.0], [-3.0, 0.5, -0.5]])
    y = jnp.asarray([0, 2])
    s = lambda x: x + 1 if x >= 0 else 1 / (1 - x)  # noqa: E731
    want = [
        -np.log(s(r[k]) / sum(s(v) for v in r)) for r, k in zip(z.tolist(), [0, 2], strict=True)
    ]
    got = loss_fn(Train(objective="stablemax"), z, y, 3)
    np.testing.assert_allclose(got, want, rtol=1e-6)

    big = jnp.asarray([[120.0, 0.0, -40.0]])
    label = jnp.asarray([0])
    for objective in ("cross_entropy", "stablemax"):
        train = Train(objective=objective)
        value, grad = jax.value_and_grad(lambda x, t=train: loss_fn(t, x, label, 3)[0])(big)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), objective
        if objective == "cross_entropy":
            assert value == 0.0 and np.all(grad == 0.0), "float32 softmax collapses here"
        else:
            assert value > 0.0 and np.any(grad != 0.0), "StableMax keeps a gradient"


def test_the_perpendicular_gradient_is_orthogonal_to_the_weights_with_the_norm_of_g():
    w = {"a": jnp.asarray([[1.0, 2.0], [3.0, -1.0]]), "b": jnp.asarray([0.5, -2.0, 1.0])}
    g = {"a": jnp.asarray([[0.3, -0.1], [2.0, 0.7]]), "b": jnp.asarray([1.0, 1.0, -0.2])}
    transform = orthogonal_grad()
    out, _ = transform.update(g, transform.init(w), w)
    for k in w:
        wk, gk, ok = (np.asarray(t[k]).ravel() for t in (w, g, out))
        assert abs(np.dot(ok, wk)) < 1e-5 * np.linalg.norm(ok) * np.linalg.norm(wk), k
        np.testing.assert_allclose(np.linalg.norm(ok), np.linalg.norm(gk), rtol=1e-6)
        assert not np.allclose(ok, gk), "the parallel part is removed"


def test_grokfast_ema_starts_at_the_first_gradient_and_amplifies_the_slow_part():
    alpha, lamb = 0.9, 2.0
    transform = grokfast_ema(alpha, lamb)
    params = jnp.zeros(2)
    state = transform.init(params)
    g1, g2 = jnp.asarray([1.0, -2.0]), jnp.asarray([3.0, 0.5])
    out1, state = transform.update(g1, state, params)
    np.testing.assert_allclose(out1, g1 + lamb * g1)
    out2, state = transform.update(g2, state, params)
    np.testing.assert_allclose(out2, g2 + lamb * (alpha * g1 + (1 - alpha) * g2), rtol=1e-6)


MODULAR = {
    "name": "grokfast_tiny",
    "data": {"name": "modular", "p": 7, "op": "x+y", "train_fraction": 0.5},
    "model": {"name": "mlp", "width": 16},
    "train": {
        "optimizer": "adamw",
        "lr": 0.01,
        "batch_size": "full",
        "epochs": 8,
        "eval_points": 3,
        "grokfast": True,
    },
}


def _packs(train: dict, grid: dict):
    spec = parse_spec({**MODULAR, "train": {**MODULAR["train"], **train}, "grid": grid})
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


@pytest.mark.slow
def test_a_grokfast_sweep_is_one_pack_and_each_trial_computes_the_same_alone():
    (pack,) = _packs({}, {"train.grokfast_lamb": [0.0, 2.0], "train.grokfast_alpha": [0.98, 0.8]})
    assert len(pack.trials) == 4, "lamb and alpha vary inside one pack"
    together = train_pack(list(pack.trials), pack.key)
    lambs = [t.train.grokfast_lamb for t in pack.trials]
    on, off = lambs.index(2.0), lambs.index(0.0)
    assert together[on][-1]["train_loss"] != together[off][-1]["train_loss"], "the filter acts"
    for i in (on, len(lambs) - 1):
        _same(train_pack([pack.trials[i]], pack.key)[0], together[i], exact=False)


@pytest.mark.slow
def test_lamb_0_in_a_filtered_program_gives_the_rows_of_no_filter():
    """Equal to float32 rounding, not bit for bit: the filter's program compiles to other
    fused kernels (docs/engine.md says which columns differ, and by how much)."""
    (filtered,) = _packs({}, {"seed": [0, 1]})
    (plain,) = _packs({"grokfast": False}, {"seed": [0, 1]})
    assert filtered.key != plain.key, "the filter is part of the program"
    assert filtered.trial_ids == plain.trial_ids, "and not of the trial"
    rows_f = train_pack(list(filtered.trials), filtered.key)
    rows_p = train_pack(list(plain.trials), plain.key)
    for f, p in zip(rows_f, rows_p, strict=True):
        _same(f, p, exact=False)


@pytest.mark.slow
def test_the_perpendicular_gradient_and_eps_change_the_numbers_and_rows_record_them():
    base = _packs({"grokfast": False}, {"seed": [0]})[0]
    (plain,) = train_pack(list(base.trials), base.key)
    for change in ({"orthogonal_grad": True}, {"eps": 1e-25}, {"objective": "stablemax"}):
        (pack,) = _packs({"grokfast": False, **change}, {"seed": [0]})
        (rows,) = train_pack(list(pack.trials), pack.key)
        assert rows[-1]["train_loss"] != plain[-1]["train_loss"], change
        assert np.isfinite(rows[-1]["train_loss"]), change


@pytest.mark.slow
def test_a_perpendicular_gradient_sweep_is_one_pack_and_each_trial_computes_the_same_alone():
    """Off replicas of a program with the transform get g itself (``jnp.where``): their rows
    are bit for bit those of the off trial alone in a program without it, and each on
    trial's rows are those of the on trial alone."""
    grid = {"train.orthogonal_grad": [False, True], "seed": [0, 1]}
    (pack,) = _packs({"grokfast": False}, grid)
    assert len(pack.trials) == 4 and pack.key.train.orthogonal_grad
    together = train_pack(list(pack.trials), pack.key)
    ortho = [t.train.orthogonal_grad for t in pack.trials]
    on, off = ortho.index(True), ortho.index(False)
    assert pack.trials[on].seed == pack.trials[off].seed
    assert together[on][-1]["train_loss"] != together[off][-1]["train_loss"], "it acts"
    for i, trial in enumerate(pack.trials):
        (alone,) = _packs(
            {"grokfast": False},
            {"seed": [trial.seed]}
            | ({"train.orthogonal_grad": [True]} if trial.train.orthogonal_grad else {}),
        )
        assert alone.key.train.orthogonal_grad == trial.train.orthogonal_grad
        assert alone.trial_ids == (pack.trial_ids[i],)
        _same(train_pack(list(alone.trials), alone.key)[0], together[i], exact=True)


@pytest.mark.slow
def test_the_perpendicular_gradient_switched_off_passes_g_itself():
    w = {"a": jnp.asarray([[1.0, 2.0], [3.0, -1.0]])}
    g = {"a": jnp.asarray([[0.3, -0.1], [2.0, 0.7]])}
    off, _ = orthogonal_grad(0.0).update(g, optax.EmptyState(), w)
    np.testing.assert_array_equal(off["a"], g["a"])
    on_off = jax.vmap(lambda on: orthogonal_grad(on).update(g, optax.EmptyState(), w)[0])
    both = on_off(jnp.asarray([1.0, 0.0]))["a"]
    np.testing.assert_array_equal(both[1], g["a"])
    assert not np.allclose(both[0], g["a"]), "on, the parallel part is removed"


@pytest.mark.slow
@pytest.mark.parametrize("change", [{"eps": 1e-25}, {"objective": "stablemax"}])
def test_an_eps_or_stablemax_pack_computes_each_trial_alone_bit_for_bit(change):
    """Adam's epsilon and the objective are program settings: a pack of seeds under each
    stores, for every trial, the rows of that trial trained alone (exact, on CPU)."""
    (pack,) = _packs({"grokfast": False, **change}, {"seed": [0, 1]})
    together = train_pack(list(pack.trials), pack.key)
    for i, trial in enumerate(pack.trials):
        _same(train_pack([trial], pack.key)[0], together[i], exact=True)
