"""Parameter counts and BatchNorm state handling of every model family."""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dd.models import cnn, mlp, resnet
from dd.models.precision import x64

N_CLASSES = 10

# (model, analytic count, batch input shape, pinned parameter count)
MODEL_CASES = {
    "mlp_40-100-100-10": (
        mlp.MLP(width=100, depth=2, n_classes=N_CLASSES),
        mlp.n_params(100, 2, N_CLASSES, (40,)),
        (4, 40),
        # 40*100+100 + 100*100+100 + 100*10+10
        15210,
    ),
    "mlp_40-2-2-10": (
        mlp.MLP(width=2, depth=2, n_classes=N_CLASSES),
        mlp.n_params(2, 2, N_CLASSES, (40,)),
        (4, 40),
        # 40*2+2 + 2*2+2 + 2*10+10
        118,
    ),
    "mlp_depth3_5x8_input": (
        mlp.MLP(width=16, depth=3, n_classes=N_CLASSES),
        mlp.n_params(16, 3, N_CLASSES, (5, 8)),
        (4, 5, 8),
        # 41*16 + 2*(17*16) + 17*10
        1370,
    ),
    "mlp_depth0_logistic": (
        mlp.MLP(width=16, depth=0, n_classes=N_CLASSES),
        mlp.n_params(16, 0, N_CLASSES, (40,)),
        (4, 40),
        # 40*10+10
        410,
    ),
    "cnn2d_k4_cifar": (
        cnn.CNN(width=4, n_classes=N_CLASSES),
        cnn.n_params(4, N_CLASSES, (32, 32, 3)),
        (2, 32, 32, 3),
        # 9*(3*4 + 42*16) + 30*4 + 8*4*10 + 10 (no conv biases: BatchNorm follows)
        6606,
    ),
    "cnn2d_k64_cifar": (
        cnn.CNN(width=64, n_classes=N_CLASSES),
        cnn.n_params(64, N_CLASSES, (32, 32, 3)),
        (2, 32, 32, 3),
        # 9*(3*64 + 42*64**2) + 30*64 + 8*64*10 + 10
        1557066,
    ),
    "cnn1d_k16_mnist1d": (
        cnn.CNN(width=16, n_classes=N_CLASSES, ndim=1),
        cnn.n_params(16, N_CLASSES, (40,), ndim=1),
        (2, 40),
        # 3*(1*16 + 42*16**2) + 30*16 + 8*16*10 + 10
        34074,
    ),
    "resnet_k2_cifar": (
        resnet.PreActResNet18(width=2, n_classes=N_CLASSES),
        resnet.n_params(2, N_CLASSES, (32, 32, 3)),
        (1, 32, 32, 3),
        # 2724*2**2 + 9*3*2 + 122*2 + 8*2*10 + 10
        11364,
    ),
    "resnet_k64_cifar": (
        resnet.PreActResNet18(width=64, n_classes=N_CLASSES),
        resnet.n_params(64, N_CLASSES, (32, 32, 3)),
        (1, 32, 32, 3),
        # kuangliu PreActResNet18 (11,171,146) plus the final BatchNorm's 2*512
        11172170,
    ),
}


def count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("case", MODEL_CASES.keys())
def test_output_shape_and_parameter_count(case):
    model, analytic_count, input_shape, pinned_count = MODEL_CASES[case]
    x = jnp.zeros(input_shape, jnp.float32)
    logits, variables = jax.eval_shape(
        lambda: model.init_with_output(jax.random.PRNGKey(0), x, train=False)
    )
    assert logits.shape == (input_shape[0], N_CLASSES)
    assert count(variables["params"]) == analytic_count == pinned_count


@pytest.mark.parametrize(
    "model, input_shape",
    [
        (cnn.CNN(width=2, n_classes=N_CLASSES), (4, 8, 8, 3)),
        pytest.param(
            resnet.PreActResNet18(width=2, n_classes=N_CLASSES),
            (4, 8, 8, 3),
            marks=pytest.mark.slow,
        ),
    ],
    ids=["cnn", "resnet"],
)
@pytest.mark.slow
def test_batch_stats_update_in_train_mode_only(model: nn.Module, input_shape):
    x = np.random.default_rng(0).normal(size=input_shape).astype(np.float32)
    # An rbg key: XLA on CPU compiles these inits in 10-20 s with threefry keys, 1-4 s with rbg.
    variables = jax.jit(functools.partial(model.init, train=False))(
        jax.random.key(0, impl="rbg"), x
    )

    @jax.jit  # one compile, not one per op
    def apply_in_both_modes(variables, x):
        _, train_state = model.apply(variables, x, train=True, mutable=["batch_stats"])
        _, eval_state = model.apply(variables, x, train=False, mutable=["batch_stats"])
        return train_state, eval_state

    train_state, eval_state = apply_in_both_modes(variables, x)

    def leaves_unchanged(new_stats):
        unchanged = jax.tree.map(
            lambda new, old: np.array_equal(new, old), new_stats, variables["batch_stats"]
        )
        return jax.tree.leaves(unchanged)

    assert not any(leaves_unchanged(train_state["batch_stats"]))
    assert all(leaves_unchanged(eval_state["batch_stats"]))


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known defect, to fix: cnn.max_pool_2 and the global max take jnp.max, whose "
    "gradient masks the inputs equal to the max; compiled, XLA's CPU backend recomputes the "
    "pooled values apart from the max and the mask misses (the jvp is NaN). A max by argmax "
    "and gather computes the float64 gradient to 5e-7 compiled (tried, not landed: it changes "
    "every CNN's numbers and the recorded CNN runs)",
)
def test_a_compiled_cnn_gradient_is_its_float64_gradient():
    """The 1-D CNN at width 16 (the program narrow CNNs train in), compiled, has the gradient
    of the same network computed op by op in float64, to float32 rounding (op by op in
    float32 it agrees to 2.4e-7; compiled it missed by 0.42 on JAX 0.10.2's CPU backend)."""
    model = cnn.CNN(width=16, n_classes=N_CLASSES, ndim=1)
    x = jax.random.normal(jax.random.key(1), (8, 40))
    y = jnp.arange(8) % N_CLASSES
    variables = model.init(jax.random.key(0), x[:1], train=False)

    def loss(model, params, stats, x):
        logits, _ = model.apply(
            {"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
        )
        return jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(8), y])

    compiled = jax.jit(jax.grad(loss, argnums=1), static_argnums=0)(
        model, variables["params"], variables["batch_stats"], x
    )
    with x64("float64"):
        model64 = cnn.CNN(
            width=16, n_classes=N_CLASSES, ndim=1, dtype=jnp.float64, param_dtype=jnp.float64
        )
        wide = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), (variables, x))
        reference = jax.grad(loss, argnums=1)(
            model64, wide[0]["params"], wide[0]["batch_stats"], wide[1]
        )
    for got, want in zip(jax.tree.leaves(compiled), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
