"""The optimizer, the learning-rate schedule and the per-example loss of a trained network.

Learning rate and weight decay are injected as per-replica arrays
(``optax.inject_hyperparams``), so a sweep over them shares one compiled program.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from dd.spec.config import Train


def make_optimizer(train: Train) -> optax.GradientTransformation:
    """The optimizer, with learning rate and weight decay injected as per-replica arrays."""

    def build(learning_rate, weight_decay):
        if train.optimizer == "adamw":
            return optax.adamw(learning_rate, b1=train.b1, b2=train.b2, weight_decay=weight_decay)
        if train.optimizer == "adam":
            inner = optax.adam(learning_rate, b1=train.b1, b2=train.b2)
        else:
            inner = optax.sgd(learning_rate, momentum=train.momentum or None)
        return optax.chain(optax.add_decayed_weights(weight_decay), inner)  # coupled L2

    return optax.inject_hyperparams(build)(learning_rate=0.0, weight_decay=0.0)


def lr_factor(train: Train, step: jax.Array, total_steps: jax.Array) -> jax.Array:
    """The schedule's multiplier of the base learning rate at ``step`` (see ``Train``)."""
    t = step.astype(jnp.float32)
    if train.schedule == "inverse_sqrt":
        factor = 1.0 / jnp.sqrt(1.0 + jnp.floor(t / train.schedule_steps))
    elif train.schedule == "cosine":
        factor = 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(t / total_steps, 1.0)))
    else:
        factor = jnp.ones_like(t)
    if train.warmup_steps:
        factor = factor * jnp.minimum((t + 1.0) / train.warmup_steps, 1.0)
    return factor


def loss_fn(train: Train, logits_BK: jax.Array, y_B: jax.Array, n_classes: int) -> jax.Array:
    """Per-example loss: cross-entropy, or squared error summed over one-hot outputs."""
    if train.objective == "cross_entropy":
        return optax.softmax_cross_entropy_with_integer_labels(logits_BK, y_B)
    target_BK = jax.nn.one_hot(y_B, n_classes) if n_classes else y_B[:, None]
    return jnp.sum((logits_BK - target_BK) ** 2, axis=-1)
