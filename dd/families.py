"""Model families: the one door through which every network reaches the engine.

A ``Family`` says how to build a trial's Flax module, how many parameters it has, which
width its program is compiled for, and whether it is convolutional (which picks the step
loop on CPU, ``dd.loop``). The engine, the packer and the executor ask only these questions;
none of them knows which family it holds. Built-in families live beside their modules
(``dd.mlp``, ``dd.cnn``, ``dd.resnet``, ``dd.transformer``) and user modules come in through
``dd.user_model``; each defines ``FAMILY``, found here by the model config's ``name``.

Padding. A family whose ``program_width`` rounds a width up trains a narrow trial inside the
wider program: every parameter axis that grows with the width (found by comparing the
parameter shapes at widths 1 and 2, so it works for any such module) keeps only its first
``a + b * width`` entries and is zero past them. Units that start at zero in and out stay at
zero (no gradient reaches them, and weight decay keeps zero at zero), so the wide program
computes the narrow network. Kernels are rescaled by sqrt(wide fan-in / narrow fan-in), so
the live weights start with the narrow network's own fan-in variance.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dd.config import ModularData, Trial
from dd.precision import compute_dtype

BUILTIN_MODULES = ("dd.mlp", "dd.cnn", "dd.resnet", "dd.transformer", "dd.user_model")


def own_width(trial: Trial) -> int:
    """The default program width: the trial's own (no padding)."""
    return trial.model.width


@dataclasses.dataclass(frozen=True)
class Family:
    """How one kind of network is built, counted and compiled.

    ``build(trial, dtype)``: the Flax linen module (``dtype`` is the compute dtype);
    ``__call__(x, train)`` returns logits. ``count(trial)``: trainable parameters.
    ``program_width(trial)``: the width its program compiles for (>= the trial's; see
    the module docstring). ``activation_floats(trial)``: floats of activation memory per
    training example, for a first guess at pack sizes. ``convolutional(trial)``: its layers
    are convolutions (XLA's CPU backend runs those slowly inside loops).
    """

    name: str
    build: Callable[[Trial, Any], Any]
    count: Callable[[Trial], int]
    activation_floats: Callable[[Trial], int]
    program_width: Callable[[Trial], int] = own_width
    convolutional: Callable[[Trial], bool] = lambda trial: False

    def pads(self, trial: Trial) -> bool:
        return self.program_width is not own_width


@functools.cache
def _registry() -> dict[str, Family]:
    families = {}
    for name in BUILTIN_MODULES:
        family = importlib.import_module(name).FAMILY
        families[family.name] = family
    return families


def family_of(trial: Trial) -> Family:
    """The family of a trial's model (by its config ``name``)."""
    try:
        return _registry()[trial.model.name]
    except KeyError:
        raise TypeError(f"no network family named {trial.model.name!r}") from None


def n_outputs(trial: Trial) -> int:
    """Logits per example: the classes, or 1 for regression."""
    return trial.data.n_classes or 1


def token_vocab(trial: Trial) -> int:
    """The token vocabulary of modular data (its p residues), 0 for real-valued inputs."""
    return trial.data.p if isinstance(trial.data, ModularData) else 0


def make_model(trial: Trial):
    """The Flax module of a trial's network, at the trial's precision."""
    return family_of(trial).build(trial, compute_dtype(trial.train.precision))


def n_params(trial: Trial) -> int:
    """The trainable parameter count of the trial's own network (not its padded program)."""
    return family_of(trial).count(trial)


def program_trial(trial: Trial) -> Trial:
    """The trial as its program is compiled: its model at the family's program width."""
    width = family_of(trial).program_width(trial)
    if width == trial.model.width:
        return trial
    return dataclasses.replace(trial, model=dataclasses.replace(trial.model, width=width))


@functools.cache
def _width_axes(trial: Trial) -> Any:
    """Per parameter leaf, a tuple of (a, b) per axis: that axis has a + b * width entries."""

    def shapes(width: int):
        wide = dataclasses.replace(trial, model=dataclasses.replace(trial.model, width=width))
        x = jnp.zeros(
            (1,) + trial.data.input_shape, jnp.int32 if token_vocab(trial) else jnp.float32
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
    wide = program.model.width
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
            out = out * jnp.sqrt((a + b * wide) / (a + b * width)).astype(leaf.dtype)
        return out

    return jax.tree_util.tree_map_with_path(one, params, _width_axes(program))


def unpad(program: Trial, params: Any, width: int) -> Any:
    """The parameters of the width-``width`` network that ``narrow`` placed in ``program``."""

    def one(leaf, axes):
        return np.asarray(leaf)[tuple(slice(0, a + b * width) for a, b in axes)]

    return jax.tree.map(one, params, _width_axes(program))


def round_up_width(width: int, *, floor: int, multiple: int) -> int:
    """``width`` rounded up to a multiple of ``multiple``, and at least ``floor``."""
    return max(floor, multiple * math.ceil(width / multiple))
