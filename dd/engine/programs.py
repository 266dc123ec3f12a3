"""A pack's compiled programs: ``prepare`` once, then ``advance`` (or ``host_step``) to each
evaluation or checkpoint epoch.

Fixed costs per pack are what keeps a sweep from costing its compute on a fast device: every
program compiled is seconds, every blocking transfer a round trip. So a pack compiles two
programs and leaves the device once per evaluation point:

- ``prepare`` draws every replica's data from its seed and initialises it, from per-replica
  values built with numpy on the host (no tiny programs for stacking or indexing them);
- ``advance`` trains from one epoch to the next on device and, when ``measure`` is true,
  measures the replicas in the same program (``lax.cond``: no measurement cost otherwise),
  returning the whole metric tree, which the host fetches in one transfer.

Conv nets on CPU take the host loop (``dd.engine.step``): ``host_step`` is one batch, computing the
epoch's example order at its first batch and measuring after the last when asked, so that loop
too compiles two programs. A second pack of the same key and size in the same worker compiles
nothing.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dd.engine.device_data import DeviceData, Setup, draw_setups
from dd.engine.evaluate import evaluate
from dd.engine.step import (
    Program,
    Replica,
    epoch_orders,
    init_at_widths,
    pack_step,
    train_epochs_on_device,
)
from dd.models.base import scales
from dd.models.precision import matmul_precision


def prepare(program: Program, data: DeviceData, values_R: dict) -> tuple[Setup, Replica]:
    """Every replica's setup and initial state. ``values_R``: per replica (leading R axis)
    ``seed``, ``n_train``, ``label_noise``, ``lr``, ``weight_decay``, ``grokfast_alpha``,
    ``grokfast_lamb`` (optional: 0.0), ``init_scale``, ``output_scale`` (read only where the
    program scales: ``dd.models.base.scales``), ``orthogonal_grad`` (1.0 / 0.0, read only where
    the program has the perpendicular gradient) and model ``width`` (read
    on the host: each width draws its own network, ``dd.engine.step.init_replicas``)."""
    widths = tuple(int(w) for w in np.asarray(values_R["width"]))
    scaled = dict(zip(("init_scale", "output_scale"), scales(program.trial), strict=True))
    scaled["orthogonal_grad"] = program.train.orthogonal_grad
    values_R = {k: v for k, v in values_R.items() if scaled.get(k, True)}
    return _prepare(program, data, values_R, widths)


@functools.partial(jax.jit, static_argnames=("program", "widths"))
def _prepare(program: Program, data: DeviceData, values_R: dict, widths: tuple[int, ...]):
    setups = draw_setups(
        data,
        values_R["seed"],
        values_R["n_train"],
        values_R["label_noise"],
        values_R["lr"],
        values_R["weight_decay"],
        n_rows=program.n_rows,
        grokfast_alpha_R=values_R.get("grokfast_alpha"),
        grokfast_lamb_R=values_R.get("grokfast_lamb"),
        init_scale_R=values_R.get("init_scale"),
        output_scale_R=values_R.get("output_scale"),
        orthogonal_grad_R=values_R.get("orthogonal_grad"),
    )
    return setups, init_at_widths(program, data, setups, widths)


def _measured(program: Program, data: DeviceData, setups: Setup, replicas: Replica, measure):
    """The metrics of ``replicas`` if ``measure``, else zeros of the same shapes."""

    def metrics(reps):
        return evaluate(program, data, setups, reps)

    def nothing(reps):
        shapes = jax.eval_shape(metrics, reps)
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    return jax.lax.cond(measure, metrics, nothing, replicas)


@functools.partial(jax.jit, static_argnames=("program",), donate_argnames=("replicas",))
def advance(
    program: Program,
    data: DeviceData,
    setups: Setup,
    replicas: Replica,
    first: jax.Array,
    last: jax.Array,
    measure: jax.Array,
) -> tuple[Replica, dict]:
    """Train epochs ``first`` to ``last`` (exclusive) on device, then measure if ``measure``."""
    replicas = train_epochs_on_device(program, data, setups, replicas, first, last)
    return replicas, _measured(program, data, setups, replicas, measure)


@functools.partial(jax.jit, static_argnames=("program",), donate_argnames=("replicas", "orders_RN"))
def host_step(
    program: Program,
    data: DeviceData,
    setups: Setup,
    replicas: Replica,
    orders_RN: jax.Array,
    epoch: jax.Array,
    i: jax.Array,
    measure: jax.Array,
) -> tuple[Replica, jax.Array, dict]:
    """Batch ``i`` of ``epoch`` (the epoch's order drawn at its first batch), then measure if
    ``measure``; returns the replicas, the epoch's orders and the metrics."""
    orders_RN = jax.lax.cond(
        i == 0, lambda: epoch_orders(program, setups, epoch), lambda: orders_RN
    )
    with matmul_precision(program.train.precision):
        replicas = pack_step(program, data, setups, replicas, orders_RN, i)
    return replicas, orders_RN, _measured(program, data, setups, replicas, measure)


def train_to(
    program: Program,
    data: DeviceData,
    setups: Setup,
    replicas: Replica,
    first: int,
    last: int,
    measure: bool,
) -> tuple[Replica, dict]:
    """Train from epoch ``first`` to ``last`` with the program's loop; the metrics at
    ``last`` if ``measure`` (zeros otherwise). Dispatches without waiting for the device."""
    flag = np.bool_(measure)
    if program.loop != "host":
        return advance(program, data, setups, replicas, np.int32(first), np.int32(last), flag)
    n = jax.tree.leaves(setups)[0].shape[0]
    orders_RN = np.zeros((n, program.n_rows), np.int32)
    metrics = None
    for epoch in range(first, last):
        for i in range(program.steps_per_epoch):
            end = epoch == last - 1 and i == program.steps_per_epoch - 1
            replicas, orders_RN, metrics = host_step(
                program,
                data,
                setups,
                replicas,
                orders_RN,
                np.int32(epoch),
                np.int32(i),
                np.bool_(measure and end),
            )
    return replicas, metrics
