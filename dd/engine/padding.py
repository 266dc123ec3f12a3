"""Padding: a family whose ``program_width`` rounds a width up trains a narrow trial inside
the wider program (and a conv net's program, whose layers' channels are rounded up to
multiples of 8, trains the network itself, ``dd.models.base.ConvModel``).

Every parameter axis that grows with the width (found by comparing the parameter shapes of
the network itself at widths 1 and 2, so it works for any such module) keeps only its first
``a + b * width`` entries and is zero past them. Units that start at zero in and out stay at
zero (no gradient reaches them, and weight decay keeps zero at zero), so the wide program
computes the narrow network. Kernels are rescaled by sqrt(program fan-in / narrow fan-in),
so the live weights start with the narrow network's own fan-in variance.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dd.models.registry import make_model
from dd.spec.config import Trial


@functools.cache
def _width_axes(trial: Trial) -> Any:
    """Per parameter leaf, a tuple of (a, b) per axis: the network at width w has a + b * w
    entries there (the program's axis may have more)."""

    def shapes(width: int):
        # replace keeps no program rounding (not an init field): the network itself
        wide = dataclasses.replace(trial, model=dataclasses.replace(trial.model, width=width))
        x = jnp.zeros(
            (1,) + trial.data.input_shape, jnp.int32 if trial.data.integer_inputs else jnp.float32
        )
        variables = jax.eval_shape(lambda: make_model(wide).init(jax.random.key(0), x, train=False))
        return variables["params"]

    one, two = shapes(1), shapes(2)
    return jax.tree.map(
        lambda s1, s2: tuple(
            (d1 - (d2 - d1), d2 - d1) for d1, d2 in zip(s1.shape, s2.shape, strict=True)
        ),
        one,
        two,
    )


def narrow(program: Trial, params: Any, width: jax.Array) -> Any:
    """A width-``width`` network's initial parameters inside ``program``'s wider shapes."""
    width = width.astype(jnp.float32)

    def one(path, leaf, axes):
        mask = jnp.ones(leaf.shape, leaf.dtype)
        for i, (a, b) in enumerate(axes):
            if b:
                live = jnp.arange(leaf.shape[i]) < a + b * width
                mask = mask * live.reshape((-1,) + (1,) * (leaf.ndim - i - 1)).astype(leaf.dtype)
        out = leaf * mask
        if getattr(path[-1], "key", None) == "kernel" and leaf.ndim >= 2 and axes[-2][1]:
            a, b = axes[-2]
            out = out * jnp.sqrt(leaf.shape[-2] / (a + b * width)).astype(leaf.dtype)
        return out

    return jax.tree_util.tree_map_with_path(one, params, _width_axes(program))


def unpad(program: Trial, params: Any, width: int) -> Any:
    """The parameters of the width-``width`` network that ``narrow`` placed in ``program``."""

    def one(leaf, axes):
        return np.asarray(leaf)[tuple(slice(0, a + b * width) for a, b in axes)]

    return jax.tree.map(one, params, _width_axes(program))
