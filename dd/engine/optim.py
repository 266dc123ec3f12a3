"""The optimizer, the learning-rate schedule and the per-example loss of a trained network.

Learning rate, weight decay, the Grokfast filter's alpha and lamb and the perpendicular
gradient's on/off are injected as per-replica arrays (``optax.inject_hyperparams``), so a sweep
over them shares one compiled program. The gradient transforms (the perpendicular gradient,
the Grokfast filter) run before the optimizer, in that order.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from dd.models.precision import floating
from dd.spec.config import Train


def orthogonal_grad(on=1.0, eps: float = 1e-30) -> optax.GradientTransformation:
    """Prieto et al. 2025's perpendicular gradient: per tensor, g - (w.g / w.w) w rescaled to
    the norm of g (``eps`` as in their ``OrthoGrad``: a zero tensor keeps g's direction).
    ``on`` (a per-replica 0.0 / 1.0): where it is 0 the transform passes g itself, bit for
    bit, so an off replica computes the numbers of no transform. A conditional, not a
    ``jnp.where``: where replicas run one at a time (XLA CPU) an off replica runs none of the
    transform, and its rows equal those of a program without it bit for bit (with a
    ``jnp.where`` an evaluation measure moved by an ulp); vmapped, JAX makes it a select."""

    def one(g, w):
        g32, w32 = g.astype(floating()).ravel(), w.astype(floating()).ravel()
        perp = g32 - jnp.dot(w32, g32) / (jnp.dot(w32, w32) + eps) * w32
        scaled = perp * (jnp.linalg.norm(g32) / (jnp.linalg.norm(perp) + eps))
        return scaled.reshape(g.shape).astype(g.dtype)

    def update(updates, state, params):
        out = jax.lax.cond(
            jnp.asarray(on) != 0,
            lambda: jax.tree.map(one, updates, params),
            lambda: updates,
        )
        return out, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


_orthogonal = orthogonal_grad  # ``make_optimizer``'s argument of this name hides it


class GrokfastState(NamedTuple):
    count: jax.Array
    slow: optax.Updates  # h, the gradient's exponential moving average


def grokfast_ema(alpha, lamb) -> optax.GradientTransformation:
    """Lee et al. 2024's Grokfast EMA filter: h <- alpha h + (1 - alpha) g, starting at the
    first gradient as their ``gradfilter_ema`` does; passes on g + lamb h (g itself where
    lamb is 0, so a replica with the filter off computes the numbers of no filter)."""

    def init(params):
        return GrokfastState(jnp.zeros((), jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        first = state.count == 0
        slow = jax.tree.map(
            lambda h, g: jnp.where(first, g, alpha * h + (1 - alpha) * g), state.slow, updates
        )
        out = jax.tree.map(lambda g, h: jnp.where(lamb == 0, g, g + lamb * h), updates, slow)
        return out, GrokfastState(state.count + 1, slow)

    return optax.GradientTransformation(init, update)


class GrokfastMAState(NamedTuple):
    count: jax.Array
    window: optax.Updates  # the last gradients, a ring buffer: (window, *shape) per tensor


def grokfast_ma(window: int, lamb) -> optax.GradientTransformation:
    """Lee et al. 2024's Grokfast-MA filter (their ``gradfilter_ma``, warmup on): the last
    ``window`` gradients, the current one included; once the window is full the optimizer
    sees g + lamb * their mean, g itself before (and wherever lamb is 0)."""

    def init(params):
        buffer = jax.tree.map(lambda p: jnp.zeros((window, *p.shape), p.dtype), params)
        return GrokfastMAState(jnp.zeros((), jnp.int32), buffer)

    def update(updates, state, params=None):
        slot = state.count % window
        buffer = jax.tree.map(lambda b, g: b.at[slot].set(g), state.window, updates)
        full = (state.count + 1 >= window) & (lamb != 0)
        out = jax.tree.map(
            lambda g, b: jnp.where(full, g + lamb * (jnp.sum(b, axis=0) / window), g),
            updates,
            buffer,
        )
        return out, GrokfastMAState(state.count + 1, buffer)

    return optax.GradientTransformation(init, update)


def make_optimizer(train: Train) -> optax.GradientTransformation:
    """The optimizer, with learning rate and weight decay (and, where the program has the
    Grokfast filter, its alpha and lamb; where it has the perpendicular gradient, its on/off)
    injected as per-replica arrays."""

    def build(
        learning_rate, weight_decay, grokfast_alpha=0.0, grokfast_lamb=0.0, orthogonal_grad=0.0
    ):
        if train.optimizer == "adamw":
            base = optax.adamw(
                learning_rate, b1=train.b1, b2=train.b2, eps=train.eps, weight_decay=weight_decay
            )
        else:
            if train.optimizer == "adam":
                inner = optax.adam(learning_rate, b1=train.b1, b2=train.b2, eps=train.eps)
            else:
                inner = optax.sgd(learning_rate, momentum=train.momentum or None)
            base = optax.chain(optax.add_decayed_weights(weight_decay), inner)  # coupled L2
        before = [_orthogonal(orthogonal_grad)] if train.orthogonal_grad else []
        if train.grokfast and train.grokfast_window:
            before.append(grokfast_ma(train.grokfast_window, grokfast_lamb))
        elif train.grokfast:
            before.append(grokfast_ema(grokfast_alpha, grokfast_lamb))
        return optax.chain(*before, base) if before else base

    hyper = dict(learning_rate=0.0, weight_decay=0.0)
    if train.grokfast:
        hyper.update(grokfast_alpha=0.0, grokfast_lamb=0.0)
    if train.orthogonal_grad:
        hyper.update(orthogonal_grad=0.0)
    return optax.inject_hyperparams(build)(**hyper)


def lr_factor(train: Train, step: jax.Array, total_steps: jax.Array) -> jax.Array:
    """The schedule's multiplier of the base learning rate at ``step`` (see ``Train``)."""
    t = step.astype(floating())
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
    """Per-example loss: cross-entropy, StableMax cross-entropy, or squared error summed over
    one-hot outputs."""
    if train.objective == "cross_entropy":
        return optax.softmax_cross_entropy_with_integer_labels(logits_BK, y_B)
    if train.objective == "stablemax":
        return stablemax_cross_entropy(logits_BK, y_B)
    target_BK = jax.nn.one_hot(y_B, n_classes) if n_classes else y_B[:, None]
    return jnp.sum((logits_BK - target_BK) ** 2, axis=-1)


def stablemax_cross_entropy(logits_BK: jax.Array, y_B: jax.Array) -> jax.Array:
    """Prieto et al. 2025's StableMax cross-entropy: -log(s(z_y) / sum_j s(z_j)) with
    s(x) = x + 1 for x >= 0 and 1 / (1 - x) below (each branch only sees its own side, so
    neither gradient is inf or nan)."""
    z = logits_BK.astype(floating())
    s_BK = jnp.where(z >= 0, jnp.maximum(z, 0.0) + 1.0, 1.0 / (1.0 - jnp.minimum(z, 0.0)))
    s_y = jnp.take_along_axis(s_BK, y_B[:, None].astype(jnp.int32), axis=-1)[:, 0]
    return jnp.log(jnp.sum(s_BK, axis=-1)) - jnp.log(s_y)
