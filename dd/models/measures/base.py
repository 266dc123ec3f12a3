"""What a per-evaluation measure is: its schema columns and a pure JAX function on one replica.

A measure is declared in a module that imports no JAX (the store's schema and the read
commands import every declaration); its ``compute`` names, as ``"module:function"``, the
function the engine loads when it compiles a pack's evaluation and calls on each replica,
vmapped over the pack. ``compute(view)`` takes a ``View`` and returns a dict of arrays: one
per column (a scalar or a vector), or values ``to_row`` turns into columns on the host.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import pyarrow as pa

from dd.spec.config import Trial

Columns = Mapping[str, tuple[pa.DataType, str]]


def same_row(values: dict[str, Any]) -> dict[str, Any]:
    """A measure whose device values are its columns."""
    return values


@dataclasses.dataclass(frozen=True)
class Measure:
    """One per-evaluation measure.

    ``name``: how a dataset kind (``Data.measures``) or a spec (``train.measures``) asks for
    it. ``columns``: {column: (pyarrow type, description)} it adds to every results row (null
    where it does not apply). ``compute``: ``"module:function"``, the pure JAX function on one
    replica (see ``View``); it may return {} where the trial lacks what it needs (a model
    family without an input embedding). ``to_row(row)``: the host side, one replica's row of
    values (numbers and lists) with this measure's turned into its columns (they may be
    absent where it returned {}); by default its values are its columns. ``ranges``: {column:
    (low, high)} the values a numeric column can take, so its seed bands are clipped to them
    (``dd.analysis.curves.ranges``; a column without one is unbounded).
    """

    name: str
    columns: Columns
    compute: str
    to_row: Callable[[dict[str, Any]], dict[str, Any]] = same_row
    ranges: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    def load(self) -> Callable[[View], dict]:
        """The compute function (imports its module: JAX, for the engine only)."""
        module, _, function = self.compute.partition(":")
        return getattr(importlib.import_module(module), function)


class Pool(NamedTuple):
    """A kind that evaluates its whole pool (modular arithmetic: the test set is the rest of
    the table): the logits of every pool row, and the replica's training rows among them."""

    logits_PK: Any
    train_labels_P: Any  # the labels trained on (noised) at training rows, true ones elsewhere
    in_train_P: Any


class View(NamedTuple):
    """What a measure sees of one replica at an evaluation point (arrays as JAX traces).

    ``trial``: the pack's program trial (static). ``params``: the replica's parameters.
    ``logits(params, x)``: the network's logits on model-ready inputs ``x``.
    ``input_embedding(params, vocab)``: the model family's (E_x, E_y), each (vocab, d): the
    vectors tokens x and y enter with (``dd.models.base.Family``), or None where the family has
    none. ``data``: the pack's ``dd.engine.device_data.DeviceData`` (the kind's device arrays
    included). ``setup``: the replica's ``Setup`` (its key, training rows). ``pool``: a
    ``Pool`` where the kind evaluates its pool whole, else None. ``measured``: the core
    metrics and the values of the measures computed before this one. ``loss(logits, y)``:
    the per-example training objective (``train.objective``) on a batch.
    """

    trial: Trial
    params: Any
    logits: Callable[[Any, Any], Any]
    input_embedding: Callable[[Any, int], tuple[Any, Any]] | None
    data: Any
    setup: Any
    pool: Pool | None
    measured: dict
    loss: Callable[[Any, Any], Any] | None = None


def training_inputs(view: View) -> Any:
    """The model-ready inputs of all the replica's training rows (padding rows included:
    ``view.setup.mask_N`` says which are real), as ``dd.engine.device_data.prepare_inputs``
    makes them (the engine is a layer above)."""
    import jax.numpy as jnp  # the engine's side only

    from dd.models.precision import floating

    setup, data = view.setup, view.data
    if data.x_pool_PD is None:
        return setup.x_ND
    x = data.x_pool_PD[setup.index_N]
    if data.x_mean_S is not None:
        return (x.astype(floating()) / 255.0 - data.x_mean_S) / data.x_std_S
    if not jnp.issubdtype(x.dtype, jnp.integer):
        return x.astype(floating())
    return x
