"""One pack's training steps: the replicas' state, the step that differentiates the pack,
and the on-device loop over epochs (``dd.programs`` compiles them, with the host loop).

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
pack-mates carry on. Array suffixes follow ``dd.device_data``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dd.config import Train, Trial
from dd.device_data import DeviceData, Setup, prepare_inputs
from dd.models.base import apply_model
from dd.models.registry import kind_of, make_model
from dd.optim import loss_fn, lr_factor, make_optimizer
from dd.padding import narrow
from dd.precision import matmul_precision
from dd.rng import named


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
    convolutions many times slower inside a loop than outside one).
    """

    trial: Trial  # the pack key: shapes and every non-array setting
    n_rows: int  # the largest n_train of the pack's group: every replica is padded to it
    n_classes: int
    augment: bool
    loop: str = "scan"

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

    @property
    def table(self) -> bool:
        """The data is a finite table evaluated whole (``Data.TABLE``: modular arithmetic)."""
        return self.trial.data.TABLE


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


@functools.partial(jax.jit, static_argnames=("program",))
def init_replicas(
    program: Program, data: DeviceData, setups: Setup, widths_R: jax.Array
) -> Replica:
    """Each replica's initial state; ``widths_R`` are the replicas' own model widths (a
    network narrower than its program is narrowed inside it, ``dd.padding.narrow``)."""
    model, optimizer = make_model(program.trial), make_optimizer(program.train)
    pads = kind_of(program.trial).pads(program.trial)

    def init_one(setup: Setup, width: jax.Array) -> Replica:
        x = batch_inputs(data, setup, jnp.arange(1))
        variables = model.init(named(setup.key, "init"), x, train=False)
        params = variables["params"]
        if pads:
            params = narrow(program.trial, params, width)
        return Replica(
            params,
            variables.get("batch_stats", {}),
            optimizer.init(params),
            jnp.zeros((), jnp.int32),
            jnp.ones((), bool),
            -jnp.ones((), jnp.int32),
        )

    with matmul_precision(program.train.precision):
        return jax.vmap(init_one)(setups, widths_R)


def epoch_order(setup: Setup, epoch: jax.Array, n_rows: int) -> jax.Array:
    """A random permutation of the replica's first n_train rows, then the masked rows.

    Each row's sort key is drawn from (trial key, epoch, row), so the order of the first
    n_train rows does not depend on how many rows the pack pads to.
    """
    k_epoch = jax.random.fold_in(named(setup.key, "order"), epoch)
    keys_N = jax.vmap(lambda j: jax.random.uniform(jax.random.fold_in(k_epoch, j)))(
        jnp.arange(n_rows)
    )
    return jnp.argsort(jnp.where(jnp.arange(n_rows) < setup.n_train, keys_N, 2.0))


def pack_step(
    program: Program,
    data: DeviceData,
    setups: Setup,
    replicas: Replica,
    orders_RN: jax.Array,
    i: jax.Array,
) -> Replica:
    """Batch ``i`` of an epoch (each replica's in its own order) for every replica; a no-op
    for a replica with no batch i. The gradient is of the sum of the replicas' losses."""
    train, batch = program.train, program.batch
    model, optimizer = make_model(program.trial), make_optimizer(train)

    def take_batch(setup: Setup, replica: Replica, order_N: jax.Array):
        if program.full_batch:  # rows [0, n_train) are the replica's examples, the rest padding
            steps_r, rows_B = jnp.int32(1), jnp.arange(batch)
        else:
            steps_r = setup.n_train // batch
            rows_B = jax.lax.dynamic_slice(order_N, (i * batch,), (batch,))
        x_BD = batch_inputs(data, setup, rows_B)
        if program.augment:
            x_BD = augment(jax.random.fold_in(named(setup.key, "augment"), replica.step), x_BD)
        return x_BD, setup.y_N[rows_B], setup.mask_N[rows_B].astype(jnp.float32), steps_r

    x_RBD, y_RB, weight_RB, steps_R = jax.vmap(take_batch)(setups, replicas, orders_RN)

    def replica_loss(params, batch_stats, x_BD, y_B, weight_B):
        logits_BK, stats = apply_model(model, params, batch_stats, x_BD, True)
        per_example_B = loss_fn(train, logits_BK, y_B, program.n_classes)
        return jnp.sum(weight_B * per_example_B) / jnp.sum(weight_B), stats

    def pack_loss(params_R):
        loss_R, stats_R = jax.vmap(replica_loss)(
            params_R, replicas.batch_stats, x_RBD, y_RB, weight_RB
        )
        return jnp.sum(loss_R), (loss_R, stats_R)

    grads_R, (loss_R, stats_R) = jax.grad(pack_loss, has_aux=True)(replicas.params)

    def update(setup: Setup, replica: Replica, grads, loss, stats, steps_r) -> Replica:
        hyper = dict(
            replica.opt_state.hyperparams,
            learning_rate=setup.lr * lr_factor(train, replica.step, steps_r * train.epochs),
            weight_decay=setup.weight_decay,
        )
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

    return jax.vmap(update)(setups, replicas, grads_R, loss_R, stats_R, steps_R)


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
