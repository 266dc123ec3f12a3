"""One pack's training steps: the replicas' state, the step that differentiates the pack,
and the on-device loop over epochs (``dd.engine.programs`` compiles them, with the host loop).

Every replica of a pack shares the model, the data pool, the batch size and the epoch count;
seeds, n_train, label noise, learning rate and weight decay differ as arrays. A replica with
n_r examples takes E_r = floor(n_r / B) full batches per epoch (the last partial batch is
dropped, so BatchNorm never sees padding); the pack takes E_max = max E_r steps per epoch and
replica r is frozen on steps i >= E_r, so it follows exactly the path it would alone.

Differentiate the pack, not the replica: ``pack_step`` takes the gradient of the *sum* of the
replicas' losses with respect to all their parameters, outside the replica vmap. Each
replica's gradient is its own (the sum's cotangent is 1 for every term), and a convolution's
weight gradient becomes a batch-grouped convolution, which GPU libraries run well; a gradient
taken inside the vmap gives a feature-grouped convolution whose kernel is a whole feature
map, which XLA's GPU backend cannot hand to cuDNN.

A replica whose loss turns NaN or Inf stops (its state frozen) and records the step; its
pack-mates carry on. Array suffixes follow ``dd.engine.device_data``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dd.engine import block
from dd.engine.device_data import DeviceData, Setup, prepare_inputs
from dd.engine.optim import loss_fn, lr_factor, make_optimizer
from dd.engine.padding import at_width, place
from dd.models.base import apply_model, n_outputs, scales
from dd.models.precision import floating, matmul_precision, widened
from dd.models.registry import kind_of, make_model
from dd.models.rng import named
from dd.spec.config import Train, Trial


class Replica(NamedTuple):
    """One replica's training state (every leaf gains a leading R axis in a pack)."""

    params: Any
    batch_stats: Any
    opt_state: Any
    step: jax.Array  # optimizer steps taken
    alive: jax.Array  # False once the loss went non-finite
    diverged_step: jax.Array  # the step it did, else -1


@dataclasses.dataclass(frozen=True)
class Program:
    """The static part of a pack: what one compiled program is specialised to.

    ``loop``: "scan" runs the epochs between two evaluations in one on-device loop;
    "host" calls a compiled step once per batch from Python (XLA's CPU backend runs
    convolutions many times slower inside a loop than outside one). ``block``: the replicas'
    own widths when one block-diagonal dense network trains them all (``dd.engine.block``).
    ``mapped``: the step and the evaluation run the replicas one after another (``lax.map``)
    instead of vmapping them, so each replica's arithmetic is that of a pack of one (XLA's CPU
    backend rounds a vmapped pack differently with its size, ``dd.engine.train``).
    """

    trial: Trial  # the pack key: shapes and every non-array setting
    n_rows: int  # the largest n_train of the pack's group: every replica is padded to it
    n_classes: int
    augment: bool
    loop: str = "scan"
    block: tuple[int, ...] = ()  # a block program's replica widths (``dd.engine.block``), else ()
    mapped: bool = False  # the replicas one after another (``lax.map``), not vmapped

    @property
    def train(self) -> Train:
        return self.trial.train

    @property
    def full_batch(self) -> bool:
        return self.train.batch_size == "full"

    @property
    def batch(self) -> int:
        return self.n_rows if self.full_batch else self.train.batch_size

    @property
    def steps_per_epoch(self) -> int:
        return self.n_rows // self.batch


def batch_inputs(data: DeviceData, setup: Setup, rows: jax.Array) -> jax.Array:
    """Training inputs of ``rows`` (positions in the trial's order), as model-ready arrays."""
    if data.x_pool_PD is None:
        return setup.x_ND[rows]
    return prepare_inputs(data.x_pool_PD[setup.index_N[rows]], data.x_mean_S, data.x_std_S)


def augment(key: jax.Array, x_BHWC: jax.Array) -> jax.Array:
    """Random crop after zero padding by 4, and a random horizontal flip, per example."""
    b, h, w, c = x_BHWC.shape
    k_crop, k_flip = jax.random.split(key)
    padded = jnp.pad(x_BHWC, ((0, 0), (4, 4), (4, 4), (0, 0)))
    offsets = jax.random.randint(k_crop, (b, 2), 0, 9)
    x = jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c)))(
        padded, offsets
    )
    flip = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
    return jnp.where(flip, x[:, :, ::-1], x)


def init_replicas(
    program: Program, data: DeviceData, setups: Setup, widths_R: jax.Array
) -> Replica:
    """Each replica's initial state; ``widths_R`` are the replicas' own model widths (host
    values: each width's network is drawn at that width, then placed in the program)."""
    widths = tuple(int(w) for w in np.asarray(widths_R))
    return init_at_widths(program, data, setups, widths)


@functools.partial(jax.jit, static_argnames=("program", "widths"))
def init_at_widths(
    program: Program, data: DeviceData, setups: Setup, widths: tuple[int, ...]
) -> Replica:
    """``init_replicas``: the draw is the network's own at each width (its parameter shapes
    fix the numbers drawn), so a trial starts alike in any program width and any pack."""
    model, optimizer = make_model(program.trial), make_optimizer(program.train)
    pads = kind_of(program.trial).pads(program.trial)

    def init_one(setup: Setup, width: int) -> Replica:
        x = batch_inputs(data, setup, jnp.arange(1))
        key = named(setup.key, "init")
        variables = model.init(key, x, train=False)  # the program's batch_stats (no draws)
        params = variables["params"]
        if pads:
            own = make_model(at_width(program.trial, width)).init(key, x, train=False)
            params = place(program.trial, own["params"], width)
        params = widened(program.train.precision, params)  # float64 packs: float64 state
        if scales(program.trial)[0]:
            params = jax.tree.map(lambda p: p * setup.init_scale.astype(p.dtype), params)
        return Replica(
            params,
            widened(program.train.precision, variables.get("batch_stats", {})),
            optimizer.init(params),
            jnp.zeros((), jnp.int32),
            jnp.ones((), bool),
            -jnp.ones((), jnp.int32),
        )

    groups = {w: np.flatnonzero(np.asarray(widths) == w) for w in dict.fromkeys(widths)}
    with matmul_precision(program.train.precision):
        parts = [
            jax.vmap(functools.partial(init_one, width=w))(
                jax.tree.map(lambda a, rows=rows: a[rows], setups)
            )
            for w, rows in groups.items()
        ]
    order = np.argsort(np.concatenate(list(groups.values())), kind="stable")
    return jax.tree.map(lambda *xs: jnp.concatenate(xs)[order], *parts)


def epoch_order(setup: Setup, epoch: jax.Array, n_rows: int) -> jax.Array:
    """A random permutation of the replica's first n_train rows, then the masked rows.

    Each row's sort key is drawn from (trial key, epoch, row), so the order of the first
    n_train rows does not depend on how many rows the pack pads to.
    """
    k_epoch = jax.random.fold_in(named(setup.key, "order"), epoch)
    keys_N = jax.vmap(lambda j: jax.random.uniform(jax.random.fold_in(k_epoch, j)))(
        jnp.arange(n_rows)
    )
    order = jnp.argsort(jnp.where(jnp.arange(n_rows) < setup.n_train, keys_N, 2.0))
    return order.astype(jnp.int32)  # int64 under x64 (float64 packs): the host loop's int32


def take_batches(
    program: Program, data: DeviceData, setups: Setup, replicas: Replica, orders_RN, i
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Every replica's batch ``i`` (in its own order, augmented with its own draws): inputs,
    labels, example weights (0 for padding rows) and the replica's steps per epoch."""
    batch = program.batch

    def take_batch(setup: Setup, replica: Replica, order_N: jax.Array):
        if program.full_batch:  # rows [0, n_train) are the replica's examples, the rest padding
            steps_r, rows_B = jnp.int32(1), jnp.arange(batch)
        else:
            steps_r = setup.n_train // batch
            rows_B = jax.lax.dynamic_slice(order_N, (i * batch,), (batch,))
        x_BD = batch_inputs(data, setup, rows_B)
        if program.augment:
            x_BD = augment(jax.random.fold_in(named(setup.key, "augment"), replica.step), x_BD)
        return x_BD, setup.y_N[rows_B], setup.mask_N[rows_B].astype(floating()), steps_r

    return jax.vmap(take_batch)(setups, replicas, orders_RN)


def mean_loss(program: Program, logits_BK, y_B, weight_B) -> jax.Array:
    """One replica's batch loss: the mean per-example loss over its real rows."""
    per_example_B = loss_fn(program.train, logits_BK, y_B, program.n_classes)
    return jnp.sum(weight_B * per_example_B) / jnp.sum(weight_B)


def update_replica(
    program: Program, setup: Setup, replica: Replica, grads, loss, stats, steps_r, i
) -> Replica:
    """One replica's optimizer step from its own gradient, with its own learning rate and
    weight decay; kept as it was if it has no batch ``i`` or its loss is not finite."""
    train, optimizer = program.train, make_optimizer(program.train)
    hyper = dict(
        replica.opt_state.hyperparams,
        learning_rate=setup.lr * lr_factor(train, replica.step, steps_r * train.epochs),
        weight_decay=setup.weight_decay,
    )
    if train.grokfast:
        hyper.update(grokfast_alpha=setup.grokfast_alpha, grokfast_lamb=setup.grokfast_lamb)
    if train.orthogonal_grad:
        hyper.update(orthogonal_grad=setup.orthogonal_grad)
    updates, opt_state = optimizer.update(
        grads, replica.opt_state._replace(hyperparams=hyper), replica.params
    )
    new = Replica(
        optax.apply_updates(replica.params, updates),
        stats,
        opt_state,
        replica.step + 1,
        replica.alive,
        replica.diverged_step,
    )
    active = (i < steps_r) & replica.alive
    finite = jnp.isfinite(loss)
    merged = jax.tree.map(lambda a, b: jnp.where(active & finite, a, b), new, replica)
    return merged._replace(
        alive=replica.alive & (finite | ~active),
        diverged_step=jnp.where(active & ~finite, replica.step, replica.diverged_step),
    )


def pack_step(
    program: Program,
    data: DeviceData,
    setups: Setup,
    replicas: Replica,
    orders_RN: jax.Array,
    i: jax.Array,
) -> Replica:
    """Batch ``i`` of an epoch (each replica's in its own order) for every replica; a no-op
    for a replica with no batch i. Vmapped, the gradient is of the sum of the replicas'
    losses; mapped (``Program.mapped``), each replica takes its own in turn."""
    if program.block:
        return block_step(program, data, setups, replicas, orders_RN, i)
    model = make_model(program.trial)
    x_RBD, y_RB, weight_RB, steps_R = take_batches(program, data, setups, replicas, orders_RN, i)

    def replica_loss(params, batch_stats, x_BD, y_B, weight_B, scale):
        logits_BK, stats = apply_model(model, params, batch_stats, x_BD, True)
        if scales(program.trial)[1]:
            logits_BK = logits_BK * scale
        return mean_loss(program, logits_BK, y_B, weight_B), stats

    if program.mapped:

        def one(args):
            setup, replica, x_BD, y_B, weight_B, steps_r = args
            (loss, stats), grads = jax.value_and_grad(replica_loss, has_aux=True)(
                replica.params, replica.batch_stats, x_BD, y_B, weight_B, setup.output_scale
            )
            return update_replica(program, setup, replica, grads, loss, stats, steps_r, i)

        return jax.lax.map(one, (setups, replicas, x_RBD, y_RB, weight_RB, steps_R))

    def pack_loss(params_R):
        loss_R, stats_R = jax.vmap(replica_loss)(
            params_R, replicas.batch_stats, x_RBD, y_RB, weight_RB, setups.output_scale
        )
        return jnp.sum(loss_R), (loss_R, stats_R)

    grads_R, (loss_R, stats_R) = jax.grad(pack_loss, has_aux=True)(replicas.params)
    return jax.vmap(functools.partial(update_replica, program, i=i))(
        setups, replicas, grads_R, loss_R, stats_R, steps_R
    )


def block_step(
    program: Program,
    data: DeviceData,
    setups: Setup,
    replicas: Replica,
    orders_RN: jax.Array,
    i: jax.Array,
) -> Replica:
    """``pack_step`` for a block program (``dd.engine.block``): one dense network of the replicas'
    widths side by side computes every replica's batch; each replica's own weights are cut
    from the pack's state, assembled into the block weights, and updated by its own
    optimizer step from its own slice of the gradient."""
    trial, widths = program.trial, program.block
    model = block.block_model(trial, widths)
    param_shapes, stat_shapes = block.block_shapes(trial, widths)
    x_RBD, y_RB, weight_RB, steps_R = take_batches(program, data, setups, replicas, orders_RN, i)
    # a stopped replica sees zeros, so its frozen weights cannot overflow into its mates
    # (an off-diagonal zero times an infinite activation is NaN)
    alive_R = replicas.alive.reshape((-1,) + (1,) * (x_RBD.ndim - 1))
    x_RBD = jnp.where(alive_R, x_RBD, jnp.zeros_like(x_RBD))
    state = (replicas.params, replicas.batch_stats, replicas.opt_state)
    parts = [block.own_part(trial, state, r, w) for r, w in enumerate(widths)]
    n_out = n_outputs(trial)

    def scaled(logits, r):
        return logits * setups.output_scale[r] if scales(trial)[1] else logits

    def pack_loss(own_params):
        logits_BK, stats = apply_model(
            model,
            block.assemble(own_params, param_shapes),
            block.assemble([s for _, s, _ in parts], stat_shapes),
            block.stack_inputs(x_RBD),
            True,
        )
        loss_R = jnp.stack(
            [
                mean_loss(
                    program,
                    scaled(logits_BK[:, r * n_out : (r + 1) * n_out], r),
                    y_RB[r],
                    weight_RB[r],
                )
                for r in range(len(widths))
            ]
        )
        return jnp.sum(loss_R), (loss_R, stats)

    grads, (loss_R, stats) = jax.grad(pack_loss, has_aux=True)([p for p, _, _ in parts])
    own_stats = block.split(stats, [s for _, s, _ in parts])
    for r, w in enumerate(widths):
        params, batch_stats, opt_state = parts[r]
        mine = jax.tree.map(lambda a, r=r: a[r], replicas)._replace(
            params=params, batch_stats=batch_stats, opt_state=opt_state
        )
        setup = jax.tree.map(lambda a, r=r: a[r], setups)
        new = update_replica(program, setup, mine, grads[r], loss_R[r], own_stats[r], steps_R[r], i)
        state = block.put_part(trial, state, r, w, (new.params, new.batch_stats, new.opt_state))
        replicas = replicas._replace(
            step=replicas.step.at[r].set(new.step),
            alive=replicas.alive.at[r].set(new.alive),
            diverged_step=replicas.diverged_step.at[r].set(new.diverged_step),
        )
    params, batch_stats, opt_state = state
    return replicas._replace(params=params, batch_stats=batch_stats, opt_state=opt_state)


def epoch_orders(program: Program, setups: Setup, epoch: jax.Array) -> jax.Array:
    """(R, N): every replica's example order for ``epoch``."""
    return jax.vmap(lambda s: epoch_order(s, epoch, program.n_rows))(setups)


@functools.partial(jax.jit, static_argnames=("program",), donate_argnames=("replicas",))
def train_epochs_on_device(
    program: Program,
    data: DeviceData,
    setups: Setup,
    replicas: Replica,
    first: jax.Array,
    last: jax.Array,
) -> Replica:
    """Train every replica from epoch ``first`` to ``last`` (exclusive) in one device loop."""

    def one_epoch(epoch, reps):
        orders_RN = epoch_orders(program, setups, epoch)

        def step(r, i):
            return pack_step(program, data, setups, r, orders_RN, i), None

        out, _ = jax.lax.scan(step, reps, jnp.arange(program.steps_per_epoch))
        return out

    with matmul_precision(program.train.precision):
        return jax.lax.fori_loop(first, last, one_epoch, replicas)
