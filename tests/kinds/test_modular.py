"""Modular-arithmetic data, the transformer and one-hot MLP, and the mechanistic measures
checked on embeddings and logits whose answers are known in closed form."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dd.cli import main
from dd.datasets import registry as datasets
from dd.datasets.modular import ModularData, fourier_basis, sum_directions, table
from dd.engine.train import train_pack
from dd.models import mlp, registry as models, transformer
from dd.models.measures import mechanistic
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from dd.spec.config import Trial
from dd.spec.errors import SpecError
from dd.spec.fields import build

P = 13


@pytest.mark.parametrize(
    "op, rule",
    [
        ("x+y", lambda x, y: x + y),
        ("x-y", lambda x, y: x - y),
        ("x/y", lambda x, y: x * pow(int(y), P - 2, P)),
        ("x*y", lambda x, y: x * y),
        ("x/y_if_y_odd_else_x-y", lambda x, y: x * pow(int(y), P - 2, P) if y % 2 else x - y),
        ("x^2+y^2", lambda x, y: x * x + y * y),
        ("x^2+xy+y^2", lambda x, y: x * x + x * y + y * y),
        ("x^2+xy+y^2+x", lambda x, y: x * x + x * y + y * y + x),
        ("x^3+xy", lambda x, y: x**3 + x * y),
        ("x^3+xy^2+y", lambda x, y: x**3 + x * y * y + y),
    ],
)
def test_every_operation_over_every_pair(op, rule):
    pairs, answers = table(P, op)
    assert len(pairs) == (P * (P - 1) if op in ("x/y", "x*y") else P * P)
    assert len({tuple(p) for p in pairs.tolist()}) == len(pairs)
    for (x, y), c in zip(pairs.tolist(), answers.tolist(), strict=True):
        assert c == rule(x, y) % P
    if op in ("x/y", "x*y"):
        assert not np.any(pairs[:, 1] == 0), "y = 0 left out (Grokfast's x*y keeps 0 < y < p)"
    if op == "x/y":
        assert np.all((answers * pairs[:, 1]) % P == pairs[:, 0]), "division inverts products"


def test_fourier_basis_is_orthonormal():
    basis = fourier_basis(P)
    np.testing.assert_allclose(basis @ basis.T, np.eye(P), atol=1e-12)


def test_modular_config_derives_its_split_and_rejects_bad_values():
    datasets.load(), models.load()  # the data and model names a Trial's mapping may take
    data = build(ModularData, {"name": "modular", "p": 97, "train_fraction": 0.3})
    assert (data.n_train, data.n_test, data.n_classes) == (2823, 9409 - 2823, 97)
    with pytest.raises(SpecError, match=r"^data\.p: must be an odd prime"):
        build(Trial, {"data": {"name": "modular", "p": 91}, "model": {"name": "mlp"}})
    with pytest.raises(SpecError, match=r"^data\.train_fraction: must leave"):
        build(
            Trial,
            {"data": {"name": "modular", "p": 5, "train_fraction": 0.99}, "model": {"name": "mlp"}},
        )
    with pytest.raises(SpecError, match=r"^data\.op: unknown value 'x\*\*y'"):
        build(Trial, {"data": {"name": "modular", "op": "x**y"}, "model": {"name": "mlp"}})
    with pytest.raises(SpecError, match=r"^data\.n_train: unknown field"):
        build(Trial, {"data": {"name": "modular", "n_train": 10}, "model": {"name": "mlp"}})
    with pytest.raises(SpecError, match=r"^model\.name: transformer reads modular"):
        build(Trial, {"data": {"name": "digits"}, "model": {"name": "transformer"}})
    with pytest.raises(SpecError, match=r"^train\.batch_size: must be an integer >= 1 or 'full'"):
        build(
            Trial,
            {
                "data": {"name": "modular"},
                "model": {"name": "mlp"},
                "train": {"batch_size": "half"},
            },
        )
    with pytest.raises(SpecError, match=r"^train\.batch_size: 5000 is larger than n_train"):
        build(
            Trial,
            {"data": {"name": "modular"}, "model": {"name": "mlp"}, "train": {"batch_size": 5000}},
        )


def test_a_bad_modular_spec_is_one_line_exit_2(write_spec, tmp_path, capsys):
    path = write_spec(
        {
            "name": "m",
            "data": {"name": "modular", "p": 97},
            "model": {"name": "mlp"},
            "grid": {"data.train_fraction": [0.5, 1.5]},
        }
    )
    assert main(["sweep", str(path), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "data.train_fraction: must leave" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "model, pinned",
    [
        # Nanda et al.: 114*128 + 3*128 + 4*128^2 + 2*128*512 + 512 + 128 + 128*113
        (dict(p=113, width=128, depth=1, d_mlp=512, layer_norm=False, op_token=False), 226_688),
        # Power et al.: 99*128 + 4*128 + 2*(4*128^2 + 2*128*512 + 640) + 5*2*128 + 128*97
        (dict(p=97, width=128, depth=2, d_mlp=512, layer_norm=True, op_token=True), 421_376),
    ],
)
def test_transformer_parameter_count_is_pinned(model, pinned):
    module = transformer.Transformer(**model, heads=4, attention_rate=1.0)
    x = jnp.zeros((2, 2), jnp.int32)
    logits, variables = jax.eval_shape(lambda: module.init_with_output(jax.random.PRNGKey(0), x))
    assert logits.shape == (2, model["p"])
    counted = sum(math.prod(v.shape) for v in jax.tree.leaves(variables["params"]))
    assert counted == transformer.n_params(**model) == pinned


@pytest.mark.slow
def test_attention_rate_zero_is_uniform_attention():
    """With alpha = 0 the output cannot depend on the query-key scores at all."""
    small = dict(p=7, width=16, depth=1, heads=2, d_mlp=32, layer_norm=False, op_token=False)
    module = transformer.Transformer(**small, attention_rate=0.0)
    x = jnp.array([[1, 2], [3, 4]])
    params = module.init(jax.random.PRNGKey(0), x)["params"]
    # scaling q and k (not v) changes only the scores; v is the last of the (D, 3, H, K) kernel
    qk_only = dict(params)
    kernel = params["block_0"]["qkv"]["kernel"]
    qk_only["block_0"] = {**params["block_0"], "qkv": {"kernel": kernel.at[:, :2].multiply(5.0)}}
    np.testing.assert_allclose(
        module.apply({"params": qk_only}, x),
        module.apply({"params": params}, x),
        rtol=1e-5,
        atol=1e-6,
    )
    assert not np.allclose(
        transformer.Transformer(**small, attention_rate=1.0).apply({"params": qk_only}, x),
        transformer.Transformer(**small, attention_rate=1.0).apply({"params": params}, x),
    )


@pytest.mark.slow
def test_one_hot_mlp_counts_its_inputs_as_tokens_times_vocabulary():
    module = mlp.MLP(width=8, depth=1, n_classes=P, activation="quadratic", vocab=P)
    x = jnp.array([[0, 1], [2, 3]])
    params = module.init(jax.random.PRNGKey(0), x)["params"]
    assert sum(v.size for v in jax.tree.leaves(params)) == mlp.n_params(8, 1, P, (2, P))
    w, b = params["hidden_0"]["kernel"], params["hidden_0"]["bias"]
    hidden = (w[0] + w[P + 1] + b) ** 2
    expected = hidden @ params["logits"]["kernel"] + params["logits"]["bias"]
    np.testing.assert_allclose(module.apply({"params": params}, x)[0], expected, rtol=1e-5)


def _embedding(table_PD: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """A transformer's (E_x, E_y) of a token embedding with ``table_PD`` as its first rows."""
    params = {
        transformer.EMBED: {
            "embedding": jnp.asarray(np.vstack([table_PD, np.zeros((1, table_PD.shape[1]))]))
        }
    }
    return transformer.KIND.input_embedding(params, P)


@pytest.mark.slow
def test_fourier_measures_find_the_frequencies_an_embedding_is_built_from():
    x = np.arange(P)
    two_freqs = np.stack(
        [
            np.cos(2 * np.pi * 2 * x / P),
            np.sin(2 * np.pi * 2 * x / P),
            0.5 * np.cos(2 * np.pi * 5 * x / P),
        ],
        axis=1,
    )
    basis = jnp.asarray(fourier_basis(P), jnp.float32)
    sparse = mechanistic.fourier_measures(*_embedding(two_freqs), basis, 0.9)
    assert int(sparse["n_key_freqs"]) == 2
    assert sorted(np.asarray(sparse["freq_order"])[:2].tolist()) == [2, 5]
    norms = np.asarray(sparse["fourier_norms"])
    np.testing.assert_allclose(norms[2] ** 2 / norms[5] ** 2, 2 / 0.25, rtol=1e-4)
    dense = mechanistic.fourier_measures(
        *_embedding(np.random.default_rng(0).standard_normal((P, 64))), basis, 0.9
    )
    assert int(dense["n_key_freqs"]) >= 5 and float(dense["fourier_gini"]) < 0.3
    assert float(sparse["fourier_gini"]) > 0.6


def test_gini_of_equal_values_is_zero_and_of_one_value_is_maximal():
    assert abs(float(mechanistic.gini(jnp.ones(7)))) < 1e-6
    np.testing.assert_allclose(float(mechanistic.gini(jnp.eye(7)[3])), 6 / 7, rtol=1e-6)


@pytest.mark.slow
def test_restricted_and_excluded_loss_of_logits_built_from_one_frequency():
    """Logits 8 cos(w_3 (x + y - c)) live entirely on frequency 3: keeping it keeps the
    model's loss; removing it leaves constant logits, whose loss is log p."""
    pairs, labels = table(P, "x+y")
    s = (pairs[:, 0] + pairs[:, 1])[:, None]
    logits = 8 * np.cos(2 * np.pi * 3 * (s - np.arange(P)[None]) / P).astype(np.float32)
    directions = jnp.asarray(sum_directions(pairs, P, "x+y"))
    order = jnp.asarray([3, 0, 1, 2, 4, 5, 6])
    in_train = jnp.asarray(np.arange(len(pairs)) % 2 == 0)
    out = mechanistic.restricted_excluded(
        jnp.asarray(logits),
        jnp.asarray(labels),
        jnp.asarray(labels),
        in_train,
        directions,
        jnp.int32(1),
        order,
    )
    full_loss = float(jax.numpy.mean(jax.nn.logsumexp(logits, -1) - 8))
    np.testing.assert_allclose(float(out["restricted_loss"]), full_loss, rtol=1e-4)
    np.testing.assert_allclose(float(out["excluded_loss"]), np.log(P), rtol=1e-4)


@pytest.mark.slow
def test_distance_irrelevance_tells_sum_from_difference():
    pairs, labels = table(P, "x+y")
    on_difference = np.zeros((len(pairs), P), np.float32)
    on_difference[np.arange(len(pairs)), labels] = (pairs[:, 0] - pairs[:, 1]) % P
    value = mechanistic.distance_irrelevance(
        jnp.asarray(on_difference), jnp.asarray(pairs), jnp.asarray(labels), P
    )
    assert float(value) < 1e-6, "a logit set by x - y alone has no spread at fixed x - y"
    on_sum = np.zeros_like(on_difference)
    on_sum[np.arange(len(pairs)), labels] = np.random.default_rng(0).standard_normal(len(pairs))
    value = mechanistic.distance_irrelevance(
        jnp.asarray(on_sum), jnp.asarray(pairs), jnp.asarray(labels), P
    )
    assert 0.8 < float(value) <= 1.0 + 1e-6


SPEC = {
    "name": "modpack",
    "data": {"name": "modular", "p": 23, "train_fraction": 0.5},
    "model": {"name": "mlp", "width": 32, "depth": 1, "activation": "quadratic"},
    "train": {
        "optimizer": "adamw",
        "lr": 5e-3,
        "b2": 0.98,
        "batch_size": "full",
        "epochs": 40,
        "eval_points": 3,
    },
}


@pytest.mark.slow
def test_full_batch_trial_in_a_pack_equals_the_trial_alone():
    spec = parse_spec(
        {
            **SPEC,
            "grid": {
                "data.train_fraction": [0.3, 0.6],
                "seed": [0, 1],
                "train.weight_decay": [0.0, 1.0],
                "data.label_noise": [0.0, 0.2],
            },
        }
    )
    (pack,) = make_packs(list(spec.trials), spec.resources)
    assert len(pack.trials) == 16, "fraction, seed, weight decay and corruption share a pack"
    key = pack.key
    together = train_pack(list(pack.trials), key)
    for i in (0, 5, 15):
        alone = train_pack([pack.trials[i]], key)[0]
        assert [r["step"] for r in alone] == [r["step"] for r in together[i]] == [1, 6, 40]
        for row_alone, row_pack in zip(alone, together[i], strict=True):
            for metric, value in row_alone.items():
                if isinstance(value, list):
                    if metric == "fourier_norms":
                        np.testing.assert_allclose(row_pack[metric], value, rtol=2e-5)
                    continue
                np.testing.assert_allclose(
                    row_pack[metric], value, rtol=2e-5, atol=1e-6, err_msg=f"trial {i} {metric}"
                )
