"""What every model kind gives the engine: a network ``Family`` or a closed-form ``FeatureMap``.

A kind module defines its config class (a ``NetworkModel`` or a ``FeatureModel``, whose
``check_data`` says which data it takes) and a ``KIND``; ``dd.models.registry`` lists them.
The engine, the packer and the executor ask the kind object only; none of them knows which
kind it holds. Both kinds answer ``count`` (parameters), ``program_width`` (the size its
program compiles for) and ``check`` (the resolve stage's check, for what only building the
model can tell); a ``Family`` builds a Flax module, a ``FeatureMap`` draws and applies
features for ``dd.engine.closed_form``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import jax

from dd.models.precision import floating
from dd.spec.config import Model, Trial
from dd.spec.fields import bounded


@dataclass(frozen=True, kw_only=True)
class NetworkModel(Model):
    """A Flax network trained by gradient descent (see ``dd.engine.train``); ``width`` is its size
    knob.

    ``init_scale``: every initial parameter multiplied by it (Omnigrok, Liu et al. 2023:
    a large initial weight norm delays generalisation). ``output_scale``: the network's
    output (the logits the loss and every metric see) multiplied by it (Kumar et al. 2024,
    "Grokking as the transition from lazy to rich training dynamics": a large scale keeps
    training lazy; plain multiplication, neither centred at the initial output nor with the
    loss divided by its square). Both are per-replica values: at 1.0 (the default) ids and
    rows are those of no scale, bit for bit, as the program leaves the multiplication out;
    the pack key (``dd.plan.runners``) marks a scaled trial's program with ``SCALED``, so the
    trials of a sweep at other values share one program, whatever their values.
    """

    SCALED: ClassVar[float] = -1.0  # a pack key's scale: the program multiplies by the replica's

    width: int = bounded(lo=1)
    init_scale: float = bounded(1.0, lo=0.0, lo_open=True)
    output_scale: float = bounded(1.0, lo=0.0, lo_open=True)

    def program(self, width: int) -> NetworkModel:
        """This model as a program of base width ``width`` compiles it (``program_trial``)."""
        return dataclasses.replace(self, width=width)


def scales(trial: Trial) -> tuple[bool, bool]:
    """Whether a program (its pack key ``trial``) multiplies the initial parameters and the
    output by the replicas' ``init_scale`` and ``output_scale``."""
    model = trial.model
    return getattr(model, "init_scale", 1.0) != 1.0, getattr(model, "output_scale", 1.0) != 1.0


@dataclass(frozen=True, kw_only=True)
class ConvModel(NetworkModel):
    """A conv net whose layers have multiples of ``width`` channels (k, 2k, 4k, 8k).

    ``channel_multiple``: each layer's channel count rounded up to a multiple of it. A spec
    cannot set it (not an init field; a program's model is built with ``program_multiple``,
    an init-only value that ``dataclasses.replace`` does not carry over, so a replaced model
    has 1 again, the network itself); only a program's model has 8 (``program``), padded
    exactly by ``dd.engine.padding``.
    """

    channel_multiple: int = dataclasses.field(
        init=False,
        default=1,
        metadata={"identity": "program"},  # trial ids leave it out
    )
    program_multiple: dataclasses.InitVar[int] = 1

    def __post_init__(self, program_multiple: int) -> None:
        object.__setattr__(self, "channel_multiple", program_multiple)  # building it

    def program(self, width: int) -> ConvModel:
        return dataclasses.replace(self, width=width, program_multiple=WIDTH_MULTIPLE)

    def channels(self, multiplier: int) -> int:
        """The channel count of a layer ``multiplier`` times the base width wide."""
        return round_up_width(multiplier * self.width, floor=1, multiple=self.channel_multiple)


@dataclass(frozen=True, kw_only=True)
class FeatureModel(Model):
    """A linear model on ``n_features`` features, fitted in closed form (see
    ``dd.engine.closed_form``)."""

    n_features: int = bounded(lo=1)
    SECTION: ClassVar[str] = "fit"

    def program(self, width: int) -> FeatureModel:
        """This model as its program computes it: ``width`` features (``program_trial``)."""
        return dataclasses.replace(self, n_features=width)


def own_width(trial: Trial) -> int:
    """The default program width: the trial's own (no padding)."""
    return trial.model.width


def no_check(trial: Trial, path: str) -> None:
    """A kind whose config checks itself needs no resolve-stage check."""


def n_outputs(trial: Trial) -> int:
    """Logits per example: the classes, or 1 for regression."""
    return trial.data.n_classes or 1


def apply_model(model, params, batch_stats, x, train: bool):
    """Logits (float32 whatever the compute dtype; float64 in a float64 pack) and the
    updated BatchNorm statistics: how the engine calls every family's module."""
    variables = {"params": params} | ({"batch_stats": batch_stats} if batch_stats else {})
    if train and batch_stats:
        logits, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return logits.astype(floating()), updates["batch_stats"]
    return model.apply(variables, x, train=train).astype(floating()), batch_stats


def round_up_width(width: int, *, floor: int, multiple: int) -> int:
    """``width`` rounded up to a multiple of ``multiple``, and at least ``floor``."""
    return max(floor, multiple * math.ceil(width / multiple))


def ladder_width(width: int, *, floor: int, per_octave: int) -> int:
    """``width``'s rung of a fixed ladder: ``floor``, then ``per_octave`` evenly spaced rungs
    in each octave above it (2^e < width <= 2^(e+1) rounds up to a multiple of
    2^e / per_octave): a program width that depends on the trial alone, never on its sweep."""
    if width <= floor:
        return floor
    step = max(1, (1 << ((width - 1).bit_length() - 1)) // per_octave)
    return step * math.ceil(width / step)


NARROW_WIDTH = 16  # narrower conv nets train inside one program of this width
WIDTH_MULTIPLE = 8  # a program's layers have multiples of 8 channels: tensor cores want them


def conv_program_width(trial: Trial) -> int:
    """The base width a conv net's program is compiled for: widths up to 16 share one 16-wide
    program; a wider net compiles its own, each layer's channels rounded up to a multiple of 8
    only where the layer needs it (``ConvModel.program``; 8k always is one, 4k when k is even),
    not the base width (which rounded k = 33 up to 40, 80, 160, 320 channels: 14.9% more FLOPs
    over k = 33..63, against 5.4% now, docs/bench.md)."""
    return max(trial.model.width, NARROW_WIDTH)


@dataclasses.dataclass(frozen=True)
class Family:
    """How one kind of network is built, counted and compiled.

    ``build(trial, dtype)``: the Flax linen module (``dtype`` is the compute dtype);
    ``__call__(x, train)`` returns logits. ``count(trial)``: trainable parameters.
    ``program_width(trial)``: the width its program compiles for (>= the trial's; a wider
    program trains narrow trials padded, ``dd.engine.padding``), unless the sweep's costs choose
    (``dd.plan.buckets``); ``rounded_width(trial)`` is then the narrowest it may compile for
    (the hardware's rounding). ``activation_floats(trial)``:
    floats of activation memory per training example, for a first guess at pack sizes.
    ``convolutional(trial)``: its layers are convolutions (XLA's CPU backend runs those
    slowly inside loops). ``check(trial, path)``: the resolve stage's check.
    ``block(trial, width, n_outputs, dtype)``: where given, the module at base ``width`` with
    ``n_outputs`` logits whose every layer keeps channels apart by blocks, so that replicas
    side by side train as one dense network (``dd.engine.block``); channel-last inputs.
    ``input_embedding(params, vocab)``: where given, (E_x, E_y), each (vocab, d): the vectors
    the tokens x and y of a two-token input enter with, read from a parameter-shaped tree (the
    measures of ``dd.models.measures`` read it; modular arithmetic's progress measures).
    ``tiny()``: a tiny ``model:`` mapping, which tests/kinds runs every registered kind through
    (a plugin's included; a kind without one fails there).
    """

    config: type
    build: Callable[[Trial, Any], Any]
    count: Callable[[Trial], int]
    activation_floats: Callable[[Trial], int]
    program_width: Callable[[Trial], int] = own_width
    rounded_width: Callable[[Trial], int] = own_width
    convolutional: Callable[[Trial], bool] = lambda trial: False
    check: Callable[[Trial, str], None] = no_check
    block: Callable[[Trial, int, int, Any], Any] | None = None
    input_embedding: Callable[[Any, int], tuple[Any, Any]] | None = None
    tiny: Callable[[], dict[str, Any]] | None = None

    closed_form: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return self.config.name

    def pads(self, trial: Trial) -> bool:
        return self.program_width is not own_width


def no_pool_params(model: FeatureModel, x_PD: jax.Array) -> dict[str, jax.Array]:
    """A feature map that reads nothing from the training pool."""
    return {}


@dataclasses.dataclass(frozen=True)
class FeatureMap:
    """How one kind of closed-form model draws and computes its features
    (``dd.engine.closed_form``).

    ``params(key, model, input_dim)``: its random projection. ``pool_params(model, x_PD)``:
    anything it takes from the flattened training pool (principal axes). ``featurize(model,
    params, x_ND)``: the (N, n_features) features. ``width(model, input_dim)``: the feature
    count its program compiles for (columns past a replica's ``n_features`` are zeroed).
    ``population_risk``: where given, the exact risk of the fit on the Gaussian teacher.
    ``tiny()``: a tiny ``model:`` mapping, as ``Family.tiny``.
    """

    config: type
    params: Callable[[jax.Array, FeatureModel, int], dict[str, jax.Array]]
    featurize: Callable[[FeatureModel, dict[str, jax.Array], jax.Array], jax.Array]
    width: Callable[[FeatureModel, int], int] = lambda model, input_dim: model.n_features
    pool_params: Callable[[FeatureModel, jax.Array], dict[str, jax.Array]] = no_pool_params
    population_risk: Callable[..., jax.Array] | None = None
    check: Callable[[Trial, str], None] = no_check
    tiny: Callable[[], dict[str, Any]] | None = None

    closed_form: ClassVar[bool] = True

    @property
    def name(self) -> str:
        return self.config.name

    def count(self, trial: Trial) -> int:
        return trial.model.n_features * n_outputs(trial)

    def program_width(self, trial: Trial) -> int:
        return self.width(trial.model, trial.data.input_dim)
