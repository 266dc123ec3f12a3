"""Block-diagonal dense packing: replicas of different narrow widths in one dense program.

A block program of widths ``(k_1, ..., k_R)`` is the family's network at base width
K = sum(k_r), with ``c R`` input channels and ``C R`` outputs: every layer's channels are the
replicas' channels side by side (replica r's block of a layer of m k channels starts at
m (k_1 + ... + k_{r-1})), each replica's examples are stacked on the input's channel axis and
each replica reads its own C logits. Every weight of the block network is either a diagonal
block (one replica's own weight) or off-diagonal, and off-diagonal ones are zero, so each
replica computes exactly its own network; BatchNorm statistics stay per replica because
every channel belongs to one replica.

The state never holds the block network: it holds each replica's own weights (inside the
pack's padded program shapes, ``dd.engine.padding``), and every step *assembles* the block weights
by writing those into zeros (``assemble``). The off-diagonal blocks are therefore zero by
construction, the gradient that reaches a replica's weights is the slice of the block
gradient that is its own (the assembly's transpose), and the optimizer and its weight
decay see only real weights, with each replica's own learning rate, weight decay and step
count. Families opt in with ``Family.block``; user modules do not (their layers are not
known to be channel-separable).

The waste is stated, not hidden: a dense block conv costs (sum k)^2 per layer against
sum k^2 for the replicas' own convs (``flops``); the execution plan weighs that against the
grouped convs of a vmapped pack by measured step times (``dd.engine.costs``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dd.engine.optim import make_optimizer
from dd.models.base import n_outputs
from dd.models.precision import compute_dtype
from dd.models.registry import kind_of, make_model
from dd.spec.config import Trial


def at_width(trial: Trial, width: int) -> Trial:
    """``trial`` with its model at ``width``."""
    return dataclasses.replace(trial, model=dataclasses.replace(trial.model, width=width))


def supports(trial: Trial) -> bool:
    """Whether the trial's family can train in block packs (not in float64: a block program
    assembles float32 weights)."""
    if trial.train is not None and trial.train.precision == "float64":
        return False
    return getattr(kind_of(trial), "block", None) is not None


def block_model(trial: Trial, widths: tuple[int, ...]):
    """The dense network of a block pack: base width sum(widths), one output set per replica."""
    build = kind_of(trial).block
    return build(
        trial, sum(widths), n_outputs(trial) * len(widths), compute_dtype(trial.train.precision)
    )


def _example(trial: Trial) -> jax.Array:
    dtype = jnp.int32 if trial.data.integer_inputs else jnp.float32
    return jnp.zeros((1,) + trial.data.input_shape, dtype)


def _state_shapes(trial: Trial) -> Any:
    """(params, batch_stats, optimizer state) shapes of one replica of ``trial``'s network."""
    model, optimizer = make_model(trial), make_optimizer(trial.train)

    def init():
        variables = model.init(jax.random.key(0), _example(trial), train=False)
        params = variables["params"]
        return params, variables.get("batch_stats", {}), optimizer.init(params)

    return jax.eval_shape(init)


@functools.cache
def _width_axes(trial: Trial) -> Any:
    """Per state leaf (params, batch_stats, optimizer state), (a, b) per axis: that axis has
    a + b * width entries (found from the shapes at widths 1 and 2, as ``dd.engine.padding``
    does)."""
    one, two = _state_shapes(at_width(trial, 1)), _state_shapes(at_width(trial, 2))
    return jax.tree.map(
        lambda s1, s2: tuple(
            (2 * d1 - d2, d2 - d1) for d1, d2 in zip(s1.shape, s2.shape, strict=True)
        ),
        one,
        two,
    )


def own_part(program: Trial, state: Any, r: int, width: int) -> Any:
    """Replica ``r``'s (params, batch_stats, opt_state) at its own ``width``, cut from the
    pack's state (leading R axis, padded to ``program``'s width)."""
    return jax.tree.map(
        lambda leaf, axes: leaf[(r,) + tuple(slice(0, a + b * width) for a, b in axes)],
        state,
        _width_axes(program),
    )


def put_part(program: Trial, state: Any, r: int, width: int, part: Any) -> Any:
    """The pack's state with replica ``r``'s own-width ``part`` written back into it."""
    return jax.tree.map(
        lambda leaf, axes, p: leaf.at[(r,) + tuple(slice(0, a + b * width) for a, b in axes)].set(
            p.astype(leaf.dtype)
        ),
        state,
        _width_axes(program),
        part,
    )


def _axis_offsets(sizes: list[int], block: int) -> list[int] | None:
    """Where each replica's entries start along a block-network axis: the running sums when
    the axis is the replicas' side by side, None when it is shared (a kernel's spatial extent)."""
    if len(sizes) > 1 and block == sum(sizes):
        return [int(o) for o in np.cumsum([0] + sizes[:-1])]
    if all(s == block for s in sizes):
        return None
    raise ValueError(f"a block axis of {block} matches neither the sum nor each of {sizes}")


def assemble(parts: list[Any], shapes: Any) -> Any:
    """The block network's tree (``shapes``: its leaves' shapes) with each replica's leaves
    of ``parts`` as its diagonal blocks and zeros elsewhere."""

    def one(shape, *leaves):
        offsets = [
            _axis_offsets([x.shape[i] for x in leaves], d) for i, d in enumerate(shape.shape)
        ]
        out = jnp.zeros(shape.shape, leaves[0].dtype)
        for r, leaf in enumerate(leaves):
            where = tuple(
                slice(None) if o is None else slice(o[r], o[r] + n)
                for o, n in zip(offsets, leaf.shape, strict=True)
            )
            out = out.at[where].set(leaf)
        return out

    return jax.tree.map(one, shapes, *parts)


def split(block: Any, parts: list[Any]) -> list[Any]:
    """Each replica's diagonal blocks of a block-network tree (``parts``: trees of the
    replicas' own shapes)."""

    def cut(r, leaf, *mine):
        offsets = [_axis_offsets([x.shape[i] for x in mine], d) for i, d in enumerate(leaf.shape)]
        return leaf[
            tuple(
                slice(None) if o is None else slice(o[r], o[r] + n)
                for o, n in zip(offsets, mine[r].shape, strict=True)
            )
        ]

    return [jax.tree.map(functools.partial(cut, r), block, *parts) for r in range(len(parts))]


def block_shapes(trial: Trial, widths: tuple[int, ...]) -> tuple[Any, Any]:
    """(params, batch_stats) shapes of the block network."""
    model = block_model(trial, widths)

    def init():
        x_RBD = jnp.broadcast_to(_example(trial), (len(widths), 1) + trial.data.input_shape)
        variables = model.init(jax.random.key(0), stack_inputs(x_RBD), train=False)
        return variables["params"], variables.get("batch_stats", {})

    return jax.eval_shape(init)


def stack_inputs(x_RBD: jax.Array) -> jax.Array:
    """The replicas' batches as one batch of the block network: replica r's channels at
    [c r, c (r + 1)). Examples of fewer than 3 axes (1-D signals, gray images) carry no
    channel axis in the built-in conv families; they get one of size 1."""
    if x_RBD.ndim < 5:
        x_RBD = x_RBD[..., None]
    r, b, *spatial, c = x_RBD.shape
    return jnp.moveaxis(x_RBD, 0, -2).reshape(b, *spatial, r * c)


def flops(trial: Trial, widths: tuple[int, ...], batch: int) -> dict[str, float]:
    """XLA's FLOP count of one forward pass of the block network against the replicas' own
    networks, each on ``batch`` examples (``cost_analysis`` of the compiled programs)."""

    def forward_flops(model, x):
        variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), variables)
        lowered = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(zeros, x)
        return float(lowered.compile().cost_analysis().get("flops", 0.0))

    x = jnp.zeros((batch,) + trial.data.input_shape, jnp.float32)
    own = sum(forward_flops(make_model(at_width(trial, k)), x) for k in widths)
    block = forward_flops(
        block_model(trial, widths), stack_inputs(jnp.zeros((len(widths),) + x.shape))
    )
    return {"block": block, "own": own, "waste": block / own if own else float("nan")}
