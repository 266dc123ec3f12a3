"""Training a pack of networks as one vmapped program, its epochs scanned on device.

Every replica of a pack shares the model, the data pool, the batch size and the epoch count;
seeds, n_train, label noise, learning rate and weight decay differ as arrays. A replica with
n_r examples takes E_r = floor(n_r / B) full batches per epoch (the last partial batch is
dropped, so BatchNorm never sees padding); the pack scans E_max = max E_r steps per epoch and
replica r is frozen on steps i >= E_r, so it follows exactly the path it would alone. The
host enters only at evaluation epochs: ``_train_epochs`` runs the epochs between two of
them in one ``lax.fori_loop`` (one compile for every interval), ``_evaluate`` measures.

A replica whose loss turns NaN or Inf stops (its state frozen) and records the step; its
pack-mates carry on.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dd import cnn, mechanistic, mlp, resnet, transformer
from dd.config import CnnModel, MlpModel, ModularData, ResNet18Model, Train, TransformerModel, Trial
from dd.data import Dataset, load_dataset, prepare_inputs, test_chunks, training_rows
from dd.rng import named, trial_key

EVAL_CHUNK = 1000  # examples per evaluation step; bounds activation memory


# --------------------------------------------------------------------------- models


def n_outputs(trial: Trial) -> int:
    return trial.data.n_classes or 1


def token_vocab(trial: Trial) -> int:
    """The token vocabulary of modular data (its p residues), 0 for real-valued inputs."""
    return trial.data.p if isinstance(trial.data, ModularData) else 0


def make_model(trial: Trial) -> nn.Module:
    """The Flax module of a trial's model."""
    model, outputs = trial.model, n_outputs(trial)
    if isinstance(model, MlpModel):
        return mlp.MLP(width=model.width, depth=model.depth, n_classes=outputs,
                       activation=model.activation, vocab=token_vocab(trial))
    if isinstance(model, TransformerModel):
        return transformer.Transformer(
            p=trial.data.p, width=model.width, depth=model.depth, heads=model.heads,
            d_mlp=model.d_mlp, layer_norm=model.layer_norm, op_token=model.op_token,
            attention_rate=model.attention_rate)
    if isinstance(model, CnnModel):
        ndim = 1 if len(trial.data.input_shape) == 1 else 2
        return cnn.CNN(width=model.width, n_classes=outputs, ndim=ndim)
    if isinstance(model, ResNet18Model):
        return resnet.PreActResNet18(width=model.width, n_classes=outputs)
    raise TypeError(f"not a network: {model!r}")


def program_model(trial: Trial) -> Trial:
    """The trial as its program is compiled: an MLP at ``mlp.program_width`` (narrow MLPs
    share one program); other families as they are."""
    model = trial.model
    if isinstance(model, MlpModel):
        model = dataclasses.replace(model, width=mlp.program_width(model.width, model.depth))
    return dataclasses.replace(trial, model=model)


def n_params(trial: Trial) -> int:
    """The trainable parameter count of a trial's network (closed form, pinned in tests)."""
    model, outputs, shape = trial.model, n_outputs(trial), trial.data.input_shape
    if isinstance(model, MlpModel):
        vocab = token_vocab(trial)
        return mlp.n_params(model.width, model.depth, outputs, shape + ((vocab,) if vocab else ()))
    if isinstance(model, TransformerModel):
        return transformer.n_params(trial.data.p, model.width, model.depth, model.d_mlp,
                                    model.layer_norm, model.op_token)
    if isinstance(model, CnnModel):
        return cnn.n_params(model.width, outputs, shape, ndim=1 if len(shape) == 1 else 2)
    return resnet.n_params(model.width, outputs, shape)


def bytes_per_replica(trial: Trial) -> int:
    """A rough float32 estimate of one replica's memory, to size packs: parameters, gradients
    and optimizer state, plus activations of a training batch and an evaluation chunk."""
    model, width = trial.model, trial.model.width
    if isinstance(model, MlpModel):
        per_example = width * max(model.depth, 1) + 2 * token_vocab(trial)
    elif isinstance(model, TransformerModel):  # a few tokens, each with attention and MLP
        per_example = 4 * (8 * width + 2 * model.d_mlp)
    else:  # conv nets: a few feature maps of ~width channels at input resolution
        per_example = (2 if isinstance(model, CnnModel) else 12) * width * trial.data.input_dim
    batch = trial.train.batch_size
    batch = (trial.data.n_train if batch == "full" else batch) + EVAL_CHUNK
    pool_logits = 3 * trial.data.pool_size * trial.data.p if token_vocab(trial) else 0
    return 4 * (5 * n_params(trial) + 3 * per_example * batch + trial.data.n_train
                + pool_logits)


# --------------------------------------------------------------------------- optimizer


def make_optimizer(train: Train) -> optax.GradientTransformation:
    """The optimizer, with learning rate and weight decay injected as per-replica arrays."""

    def build(learning_rate, weight_decay):
        if train.optimizer == "adamw":
            return optax.adamw(learning_rate, b1=train.b1, b2=train.b2,
                               weight_decay=weight_decay)
        if train.optimizer == "adam":
            inner = optax.adam(learning_rate, b1=train.b1, b2=train.b2)
        else:
            inner = optax.sgd(learning_rate, momentum=train.momentum or None)
        return optax.chain(optax.add_decayed_weights(weight_decay), inner)  # coupled L2

    return optax.inject_hyperparams(build)(learning_rate=0.0, weight_decay=0.0)


def lr_factor(train: Train, step: jax.Array, total_steps: jax.Array) -> jax.Array:
    """The schedule's multiplier of the base learning rate at ``step`` (see ``Train``)."""
    t = step.astype(jnp.float32)
    if train.schedule == "inverse_sqrt":
        factor = 1.0 / jnp.sqrt(1.0 + jnp.floor(t / train.schedule_steps))
    elif train.schedule == "cosine":
        factor = 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(t / total_steps, 1.0)))
    else:
        factor = jnp.ones_like(t)
    if train.warmup_steps:
        factor = factor * jnp.minimum((t + 1.0) / train.warmup_steps, 1.0)
    return factor


def loss_fn(train: Train, logits: jax.Array, y: jax.Array, n_classes: int) -> jax.Array:
    """Per-example loss: cross-entropy, or squared error summed over one-hot outputs."""
    if train.objective == "cross_entropy":
        return optax.softmax_cross_entropy_with_integer_labels(logits, y)
    target = jax.nn.one_hot(y, n_classes) if n_classes else y[:, None]
    return jnp.sum((logits - target) ** 2, axis=-1)


# --------------------------------------------------------------------------- state


class Replica(NamedTuple):
    """One replica's training state (every leaf gains a leading replica axis in a pack)."""

    params: Any
    batch_stats: Any
    opt_state: Any
    step: jax.Array  # optimizer steps taken
    alive: jax.Array  # False once the loss went non-finite
    diverged_step: jax.Array  # the step it did, else -1


class Setup(NamedTuple):
    """A replica's fixed inputs: its key, its training rows and its hyperparameters."""

    key: jax.Array
    index: jax.Array  # (n_rows,) pool row of each training example, in the trial's order
    x: jax.Array  # (n_rows, ...) only for Gaussian data, whose rows are drawn, not indexed
    y: jax.Array  # (n_rows,) training labels (noised)
    y_true: jax.Array
    noised: jax.Array
    mask: jax.Array
    n_train: jax.Array
    lr: jax.Array
    weight_decay: jax.Array


@dataclasses.dataclass(frozen=True)
class Program:
    """The static part of a pack: what one compiled program is specialised to."""

    trial: Trial  # the pack key: shapes and every non-array setting
    n_rows: int  # the largest n_train of the pack's group: every replica is padded to it
    n_classes: int
    augment: bool

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
    def modular(self) -> bool:
        return isinstance(self.trial.data, ModularData)


def _apply(model: nn.Module, params, batch_stats, x, train: bool):
    variables = {"params": params} | ({"batch_stats": batch_stats} if batch_stats else {})
    if train and batch_stats:
        logits, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return logits, updates["batch_stats"]
    return model.apply(variables, x, train=train), batch_stats


def _batch_inputs(program: Program, arrays: dict, setup: Setup, rows: jax.Array) -> jax.Array:
    """Training inputs of ``rows`` (positions in the trial's order), as model-ready floats."""
    if arrays["x_pool"] is None:
        return setup.x[rows]
    return prepare_inputs(arrays["x_pool"][setup.index[rows]], arrays["x_mean"], arrays["x_std"])


def _augment(key: jax.Array, x_BHWC: jax.Array) -> jax.Array:
    """Random crop after zero padding by 4, and a random horizontal flip, per example."""
    b, h, w, c = x_BHWC.shape
    k_crop, k_flip = jax.random.split(key)
    padded = jnp.pad(x_BHWC, ((0, 0), (4, 4), (4, 4), (0, 0)))
    offsets = jax.random.randint(k_crop, (b, 2), 0, 9)
    x = jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c)))(
        padded, offsets)
    flip = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
    return jnp.where(flip, x[:, :, ::-1], x)


@functools.partial(jax.jit, static_argnames=("program",))
def _init(program: Program, arrays: dict, setups: Setup, widths: jax.Array) -> Replica:
    """Each replica's initial state; ``widths`` are the replicas' own model widths (an MLP
    narrower than its program is narrowed inside it, ``mlp.narrow``)."""
    model, optimizer = make_model(program.trial), make_optimizer(program.train)
    config = program.trial.model

    def init_one(setup: Setup, width: jax.Array) -> Replica:
        x = _batch_inputs(program, arrays, setup, jnp.arange(1))
        variables = model.init(named(setup.key, "init"), x, train=False)
        params = variables["params"]
        if isinstance(config, MlpModel) and config.depth:
            params = mlp.narrow(params, width, config.width)
        return Replica(params, variables.get("batch_stats", {}), optimizer.init(params),
                       jnp.zeros((), jnp.int32), jnp.ones((), bool), -jnp.ones((), jnp.int32))

    return jax.vmap(init_one)(setups, widths)


def _train_step(program: Program, arrays: dict, setup: Setup, replica: Replica,
                order: jax.Array, i: jax.Array) -> Replica:
    """Batch ``i`` of an epoch (in ``order``) for one replica; a no-op where it has no batch i."""
    train = program.train
    model, optimizer = make_model(program.trial), make_optimizer(train)
    batch = program.batch
    if program.full_batch:  # rows [0, n_train) are the replica's examples, the rest padding
        steps_r, rows = jnp.int32(1), jnp.arange(batch)
    else:
        steps_r, rows = setup.n_train // batch, jax.lax.dynamic_slice(order, (i * batch,), (batch,))
    x = _batch_inputs(program, arrays, setup, rows)
    if program.augment:
        x = _augment(jax.random.fold_in(named(setup.key, "augment"), replica.step), x)
    y, weight = setup.y[rows], setup.mask[rows].astype(jnp.float32)

    def objective(params):
        logits, stats = _apply(model, params, replica.batch_stats, x, True)
        per_example = loss_fn(train, logits, y, program.n_classes)
        return jnp.sum(weight * per_example) / jnp.sum(weight), stats

    (loss, stats), grads = jax.value_and_grad(objective, has_aux=True)(replica.params)
    total = steps_r * train.epochs
    hyper = dict(replica.opt_state.hyperparams,
                 learning_rate=setup.lr * lr_factor(train, replica.step, total),
                 weight_decay=setup.weight_decay)
    updates, opt_state = optimizer.update(grads, replica.opt_state._replace(hyperparams=hyper),
                                          replica.params)
    new = Replica(optax.apply_updates(replica.params, updates), stats, opt_state,
                  replica.step + 1, replica.alive, replica.diverged_step)
    active = (i < steps_r) & replica.alive
    finite = jnp.isfinite(loss)
    keep = active & finite
    merged = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, replica)
    return merged._replace(
        alive=replica.alive & (finite | ~active),
        diverged_step=jnp.where(active & ~finite, replica.step, replica.diverged_step))


def epoch_order(setup: Setup, epoch: jax.Array, n_rows: int) -> jax.Array:
    """A random permutation of the replica's first n_train rows, then the masked rows.

    Each row's sort key is drawn from (trial key, epoch, row), so the order of the first
    n_train rows does not depend on how many rows the pack pads to.
    """
    k_epoch = jax.random.fold_in(named(setup.key, "order"), epoch)
    keys = jax.vmap(lambda j: jax.random.uniform(jax.random.fold_in(k_epoch, j)))(
        jnp.arange(n_rows))
    return jnp.argsort(jnp.where(jnp.arange(n_rows) < setup.n_train, keys, 2.0))


@functools.partial(jax.jit, static_argnames=("program",), donate_argnames=("replicas",))
def _train_epochs(program: Program, arrays: dict, setups: Setup, replicas: Replica,
                  first: jax.Array, last: jax.Array) -> Replica:
    """Train every replica from epoch ``first`` to ``last`` (exclusive), all on device."""

    def one_epoch(epoch, reps):
        def one_replica(setup, replica):
            order = epoch_order(setup, epoch, program.n_rows)

            def step(rep, i):
                return _train_step(program, arrays, setup, rep, order, i), None

            out, _ = jax.lax.scan(step, replica, jnp.arange(program.steps_per_epoch))
            return out

        return jax.vmap(one_replica)(setups, reps)

    return jax.lax.fori_loop(first, last, one_epoch, replicas)


def _chunks(n: int) -> tuple[int, int]:
    """(chunk size, number of chunks) covering n rows."""
    chunk = min(EVAL_CHUNK, n)
    return chunk, -(-n // chunk)


@functools.partial(jax.jit, static_argnames=("program",))
def _evaluate(program: Program, arrays: dict, setups: Setup, replicas: Replica) -> dict:
    """Loss and error on the train rows (clean, noised, noised vs true labels) and the test set."""
    model, train, n_classes = make_model(program.trial), program.train, program.n_classes

    def measure(replica, x, y):
        logits, _ = _apply(model, replica.params, replica.batch_stats, x, False)
        wrong = (jnp.argmax(logits, -1) != y) if n_classes else jnp.zeros(y.shape, bool)
        return loss_fn(train, logits, y, n_classes), wrong, logits

    def one(setup: Setup, replica: Replica) -> dict:
        if program.modular:
            return _evaluate_modular(program, arrays, setup, replica)
        chunk, n_chunks = _chunks(program.n_rows)

        def train_chunk(carry, c):
            rows = jnp.minimum(c * chunk + jnp.arange(chunk), program.n_rows - 1)
            valid = (c * chunk + jnp.arange(chunk) < program.n_rows) & setup.mask[rows]
            loss, wrong, logits = measure(replica, _batch_inputs(program, arrays, setup, rows),
                                          setup.y[rows])
            noised = valid & setup.noised[rows]
            true_right = (jnp.argmax(logits, -1) == setup.y_true[rows]) if n_classes else wrong
            sums = {"loss": jnp.sum(valid * loss), "wrong": jnp.sum(valid & wrong),
                    "wrong_clean": jnp.sum(valid & ~noised & wrong),
                    "wrong_noised": jnp.sum(noised & wrong),
                    "true_right_noised": jnp.sum(noised & true_right),
                    "noised": jnp.sum(noised)}
            return jax.tree.map(jnp.add, carry, sums), None

        zero = {k: jnp.zeros(()) for k in ("loss", "wrong", "wrong_clean", "wrong_noised",
                                           "true_right_noised", "noised")}
        tr, _ = jax.lax.scan(train_chunk, zero, jnp.arange(n_chunks))

        def test_chunk(carry, chunk_arrays):
            x, y, m = chunk_arrays
            loss, wrong, _ = measure(replica, prepare_inputs(x, arrays["x_mean"], arrays["x_std"]),
                                     y)
            return jax.tree.map(jnp.add, carry, {"loss": jnp.sum(m * loss),
                                                 "wrong": jnp.sum(m * wrong)}), None

        te, _ = jax.lax.scan(test_chunk, {"loss": jnp.zeros(()), "wrong": jnp.zeros(())},
                             (arrays["x_test"], arrays["y_test"], arrays["test_mask"]))
        n = setup.n_train.astype(jnp.float32)
        n_test = jnp.sum(arrays["test_mask"])
        n_clean = n - tr["noised"]
        out = {"param_norm": jnp.sqrt(sum(jnp.sum(p.astype(jnp.float32) ** 2)
                                          for p in jax.tree.leaves(replica.params)))}
        if not n_classes:  # regression: the objective is the squared loss
            return out | {"train_mse": tr["loss"] / n, "test_mse": te["loss"] / n_test}
        nan = jnp.float32(jnp.nan)
        out |= {"train_loss": tr["loss"] / n, "test_loss": te["loss"] / n_test,
                "train_error": tr["wrong"] / n, "test_error": te["wrong"] / n_test,
                "train_error_clean": jnp.where(n_clean > 0, tr["wrong_clean"] / n_clean, nan),
                "train_error_noisy": jnp.where(tr["noised"] > 0,
                                               tr["wrong_noised"] / tr["noised"], nan),
                "noisy_true_acc": jnp.where(tr["noised"] > 0,
                                            tr["true_right_noised"] / tr["noised"], nan)}
        return out

    return jax.vmap(one)(setups, replicas)


def _pool_logits(program: Program, arrays: dict, params) -> jax.Array:
    """Logits over every pair of a modular task, in chunks: (P, p)."""
    model, pairs = make_model(program.trial), arrays["pairs"]
    chunk, n_chunks = _chunks(pairs.shape[0])
    padded = jnp.concatenate([pairs, jnp.zeros((n_chunks * chunk - pairs.shape[0], 2),
                                               pairs.dtype)])
    logits = jax.lax.map(lambda x: model.apply({"params": params}, x),
                         padded.reshape(n_chunks, chunk, 2))
    return logits.reshape(n_chunks * chunk, -1)[: pairs.shape[0]]


def _evaluate_modular(program: Program, arrays: dict, setup: Setup, replica: Replica) -> dict:
    """Train metrics on the replica's pairs, test metrics on every other pair, and the
    progress measures of ``dd.grok`` (the test set of a modular task is the rest of the table)."""
    data, train, p = program.trial.data, program.train, program.n_classes
    pairs, labels = arrays["pairs"], arrays["labels"]
    logits = _pool_logits(program, arrays, replica.params)
    valid = setup.mask
    in_train = jnp.zeros(pairs.shape[0], bool).at[setup.index].max(valid)
    y_train = labels.at[setup.index].set(jnp.where(valid, setup.y, labels[setup.index]))
    noised = jnp.zeros(pairs.shape[0], bool).at[setup.index].max(setup.noised)
    predicted = jnp.argmax(logits, -1)
    wrong, true_right = predicted != y_train, predicted == labels
    test = ~in_train
    n_train, n_test, n_noised = jnp.sum(in_train), jnp.sum(test), jnp.sum(noised)
    clean = in_train & ~noised

    def mean_over(where, values):
        return jnp.where(jnp.sum(where) > 0, jnp.sum(where * values) / jnp.sum(where), jnp.nan)

    out = {"param_norm": jnp.sqrt(sum(jnp.sum(v ** 2) for v in jax.tree.leaves(replica.params))),
           "train_loss": mean_over(in_train, loss_fn(train, logits, y_train, p)),
           "test_loss": mean_over(test, loss_fn(train, logits, labels, p)),
           "train_error": jnp.sum(in_train & wrong) / n_train,
           "test_error": jnp.sum(test & ~true_right) / n_test,
           "train_error_clean": mean_over(clean, wrong),
           "train_error_noisy": mean_over(noised, wrong),
           "noisy_true_acc": mean_over(noised, true_right)}
    out |= mechanistic.fourier_measures(replica.params, arrays["fourier_basis"], p, data.key_share)
    if data.op in mechanistic.FOURIER_OPS:
        out |= mechanistic.restricted_excluded(logits, labels, y_train, in_train,
                                        arrays["sum_directions"], out["n_key_freqs"],
                                        out["freq_order"])
        out["distance_irrelevance"] = mechanistic.distance_irrelevance(logits, pairs, labels, p)
    model = make_model(program.trial)

    def correct_logit(params, pair, label):
        return model.apply({"params": params}, pair[None])[0, label]

    out["grad_symmetricity"] = mechanistic.gradient_symmetricity(
        correct_logit, replica.params, pairs, labels, p, named(setup.key, "symmetricity"))
    return out


# --------------------------------------------------------------------------- host side


def eval_epochs(train: Train) -> list[int]:
    """The evaluation schedule: ``eval_points`` epochs, log or linear, always the last."""
    if train.eval_spacing == "log":
        points = np.geomspace(1, train.epochs, train.eval_points)
    else:
        points = np.linspace(train.epochs / train.eval_points, train.epochs, train.eval_points)
    return sorted({int(round(p)) for p in points} | {train.epochs})


def _device_arrays(dataset: Dataset, data) -> dict:
    arrays = {"x_pool": dataset.x_pool, "x_mean": dataset.x_mean, "x_std": dataset.x_std}
    if isinstance(data, ModularData):  # evaluated over the whole table (see _evaluate_modular)
        from dd.modular import fourier_basis

        arrays |= {"pairs": dataset.x_pool, "labels": dataset.y_pool,
                   "fourier_basis": fourier_basis(data.p).astype(np.float32)}
        if data.op in mechanistic.FOURIER_OPS:
            arrays["sum_directions"] = mechanistic.sum_directions(dataset.x_pool, data.p, data.op)
    else:
        arrays |= test_chunks(dataset, EVAL_CHUNK)
    if dataset.x_pool is None:  # Gaussian rows are drawn per trial from the teacher
        arrays |= {"beta": dataset.beta.astype(np.float32),
                   "scale": dataset.scale.astype(np.float32), "noise_var": dataset.noise_var}
    return {k: None if v is None else jnp.asarray(v) for k, v in arrays.items()}


@functools.partial(jax.jit, static_argnames=("n_rows", "n_classes"))
def _draw_setups(arrays: dict, seeds, n_train, noise, lr, weight_decay, *, n_rows: int,
                 n_classes: int) -> Setup:
    """Each replica's key, training rows and labels, drawn from its seed (see dd.data)."""
    dataset = Dataset(arrays["x_pool"], arrays["y_pool"], None, None, n_classes,
                      beta=arrays.get("beta"), scale=arrays.get("scale"),
                      noise_var=arrays.get("noise_var", 0.0))

    def one(seed, n, rate):
        key = trial_key(seed)
        rows = training_rows(key, dataset, n_rows, n, rate)
        x = rows["x"] if dataset.x_pool is None else jnp.zeros((n_rows, 0))
        return (key, rows["index"], x.astype(jnp.float32), rows["y"], rows["y_true"],
                rows["noised"], rows["mask"])

    drawn = jax.vmap(one)(seeds, n_train, noise)
    return Setup(*drawn, n_train=n_train, lr=lr, weight_decay=weight_decay)


def train_pack(trials: list[Trial], key_trial: Trial, n_rows: int | None = None, *,
               checkpoint: Path | None = None, checkpoint_every: int = 0,
               param_files: list[Path] | None = None) -> list[list[dict[str, Any]]]:
    """Train every trial of a pack; returns, per trial, one row per evaluation epoch.

    ``key_trial`` is the pack key (``dd.packs.pack_key``), ``n_rows`` the row count replicas
    are padded to (default: the largest n_train): together they fix the compiled program.
    With ``checkpoint`` and ``checkpoint_every`` > 0 the whole state (parameters, optimizer
    state, step counts, divergence flags, the rows so far) is saved atomically every that many
    epochs, and a saved state is resumed from: the data order and augmentation draws derive
    from (trial key, epoch, step), so a resumed pack ends with the same numbers.
    ``param_files`` (one per trial) receive the final parameters (see ``load_params``).
    """
    dataset = load_dataset(key_trial.data)
    n_rows = n_rows or max(t.data.n_train for t in trials)
    program = Program(trial=key_trial, n_rows=n_rows, n_classes=dataset.n_classes,
                      augment=bool(getattr(key_trial.data, "augment", False)))
    if program.steps_per_epoch == 0:
        raise ValueError("batch_size exceeds every n_train of the pack")  # validated earlier
    arrays = _device_arrays(dataset, key_trial.data)
    setups = _draw_setups(
        {**arrays, "y_pool": None if dataset.y_pool is None else jnp.asarray(dataset.y_pool)},
        jnp.asarray([t.seed for t in trials], jnp.uint32),
        jnp.asarray([t.data.n_train for t in trials]),
        jnp.asarray([getattr(t.data, "label_noise", 0.0) for t in trials], jnp.float32),
        jnp.asarray([t.train.lr for t in trials], jnp.float32),
        jnp.asarray([t.train.weight_decay for t in trials], jnp.float32),
        n_rows=n_rows, n_classes=dataset.n_classes)
    replicas = _init(program, arrays, setups, jnp.asarray([t.model.width for t in trials]))
    steps_per_epoch = [1 if program.full_batch else t.data.n_train // program.batch
                       for t in trials]
    rows: list[list[dict[str, Any]]] = [[] for _ in trials]
    done = 0
    if checkpoint is not None and checkpoint.exists():
        replicas, done, rows = _restore(checkpoint, replicas, len(trials))
    epochs = key_trial.train.epochs
    evals = set(eval_epochs(key_trial.train))
    saves = (set(range(checkpoint_every, epochs, checkpoint_every))
             if checkpoint is not None and checkpoint_every > 0 else set())
    for epoch in sorted(evals | saves):
        if epoch <= done:
            continue
        replicas = _train_epochs(program, arrays, setups, replicas, jnp.int32(done),
                                 jnp.int32(epoch))
        done = epoch
        if epoch in evals:
            metrics = jax.tree.map(np.asarray, _evaluate(program, arrays, setups, replicas))
            alive = np.asarray(replicas.alive)
            for r in range(len(trials)):
                row = {"epoch": epoch, "step": epoch * steps_per_epoch[r]}
                if alive[r]:
                    row |= _host_metrics({k: v[r] for k, v in metrics.items()})
                rows[r].append(row)
        if epoch in saves:
            _save(checkpoint, replicas, done, rows)
    for r, path in enumerate(param_files or []):
        params = jax.tree.map(lambda a, r=r: np.asarray(a[r]), replicas.params)
        if isinstance(trials[r].model, MlpModel) and trials[r].model.depth:
            params = mlp.unpad(params, trials[r].model.width)  # the trial's own shapes
        save_params(path, params)
    diverged = np.asarray(replicas.diverged_step)
    for r, trial_rows in enumerate(rows):
        count = n_params(trials[r])
        for row in trial_rows:
            row["n_params"] = count
            if diverged[r] >= 0:
                row["status"], row["diverged_step"] = "diverged", int(diverged[r])
    return rows


def _host_metrics(values: dict[str, np.ndarray]) -> dict[str, Any]:
    """One replica's measured values as row entries: scalars as numbers, vectors as lists;
    the frequencies ranked by norm become the key frequencies (the first n_key_freqs)."""
    row = {k: v.tolist() if v.ndim else (int(v) if v.dtype.kind == "i" else float(v))
           for k, v in values.items()}
    if "freq_order" in row:
        row["key_freqs"] = row.pop("freq_order")[: row["n_key_freqs"]]
    return row


def save_params(path: Path, params) -> None:
    """A trial's trained parameters as Flax msgpack (``flax.serialization``), atomically."""
    from dd.store import atomic_write_bytes

    atomic_write_bytes(path, flax.serialization.to_bytes(params))


def load_params(path: str | Path) -> dict:
    """Parameters saved by a sweep with ``train.save_params`` (the nested dict of arrays that
    the trial's module, ``make_model(trial)``, applies): ``<sweep>/params/<trial_id>.msgpack`` (a path or a results URI)."""
    from dd.store import as_store_path

    return flax.serialization.msgpack_restore(as_store_path(path).read_bytes())


def _save(path: Path, replicas: Replica, epoch: int, rows: list) -> None:
    """One msgpack file (Flax's serialization) holding the state and the rows, written
    atomically: a crash mid-write leaves the previous checkpoint."""
    from dd.store import atomic_write_bytes

    meta = json.dumps({"epoch": epoch, "rows": rows}).encode()
    payload = flax.serialization.to_bytes(
        {"replicas": replicas, "meta": np.frombuffer(meta, np.uint8)})
    atomic_write_bytes(path, payload)


def _restore(path: Path, template: Replica, n_trials: int) -> tuple[Replica, int, list]:
    """The saved state, or the fresh ``template`` if the file does not fit this pack."""
    try:
        state = flax.serialization.from_bytes(
            {"replicas": template, "meta": np.zeros(0, np.uint8)}, path.read_bytes())
        meta = json.loads(bytes(np.asarray(state["meta"], np.uint8)))
        if len(meta["rows"]) != n_trials:
            raise ValueError("the checkpoint holds another pack")
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"warning: ignoring checkpoint {path} ({e}); training from the start",
              file=sys.stderr)
        return template, 0, [[] for _ in range(n_trials)]
    replicas = jax.tree.map(jnp.asarray, state["replicas"])
    return replicas, meta["epoch"], meta["rows"]
