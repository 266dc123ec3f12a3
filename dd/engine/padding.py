"""Padding: a family whose ``program_width`` rounds a width up trains a narrow trial inside
the wider program (and a conv net's program, whose layers' channels are rounded up to
multiples of 8, trains the network itself, ``dd.models.base.ConvModel``).

Every parameter axis that grows with the width (found by comparing the parameter shapes of
the network itself at widths 1 and 2, so it works for any such module) keeps only its first
``a + b * width`` entries and is zero past them. Units that start at zero in and out stay at
zero (no gradient reaches them, and weight decay keeps zero at zero), so the wide program
computes the narrow network. The live weights are drawn by the network itself at its own
width (``place``), so a trial starts from the same numbers whatever program trains it.
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


@functools.cache
def _program_shapes(program: Trial) -> Any:
    """The shapes of ``program``'s parameters."""
    x = jnp.zeros(
        (1,) + program.data.input_shape, jnp.int32 if program.data.integer_inputs else jnp.float32
    )
    variables = jax.eval_shape(lambda: make_model(program).init(jax.random.key(0), x, train=False))
    return variables["params"]


def at_width(program: Trial, width: int) -> Trial:
    """The network itself at ``width`` (``replace`` keeps no program rounding)."""
    return dataclasses.replace(program, model=dataclasses.replace(program.model, width=width))


def place(program: Trial, params: Any, width: int) -> Any:
    """A width-``width`` network's parameters (drawn at its own width, so the same numbers
    whatever program trains it) inside ``program``'s wider shapes, zero past them."""

    def one(leaf, shape):
        return jnp.pad(leaf, [(0, p - n) for n, p in zip(leaf.shape, shape.shape, strict=True)])

    return jax.tree.map(one, params, _program_shapes(program))


def unpad(program: Trial, params: Any, width: int) -> Any:
    """The parameters of the width-``width`` network that ``place`` put in ``program``."""

    def one(leaf, axes):
        return np.asarray(leaf)[tuple(slice(0, a + b * width) for a, b in axes)]

    return jax.tree.map(one, params, _width_axes(program))
