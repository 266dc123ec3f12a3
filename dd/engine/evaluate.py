"""Measuring a pack's replicas at an evaluation point, inside one compiled program.

Classification and regression: loss and error on each replica's training rows (all, clean,
noised, and the noised ones against their true labels) and on the test set, in chunks of
``EVAL_CHUNK`` rows so memory stays bounded. A kind that gives no test chunks (modular
arithmetic) is evaluated over its whole pool: the rows a replica does not train on are its
test set. Then the measures the trial asks for (``dd.models.measures``: its data kind's, its
spec's ``train.measures``), each a pure function of the replica that sees the ``View`` built
here. Array suffixes follow ``dd.engine.device_data``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from dd.engine.device_data import DeviceData, Setup, prepare_inputs
from dd.engine.optim import loss_fn
from dd.engine.step import Program, Replica, batch_inputs
from dd.models.base import apply_model, scales
from dd.models.measures import for_trial
from dd.models.measures.base import Pool, View
from dd.models.precision import floating, matmul_precision
from dd.models.registry import kind_of, make_model

EVAL_CHUNK = 1000  # examples per evaluation step; bounds activation memory

TRAIN_SUMS = ("loss", "wrong", "wrong_clean", "wrong_noised", "true_right_noised", "noised")


def _chunks(n: int) -> tuple[int, int]:
    """(chunk size, number of chunks) covering n rows."""
    chunk = min(EVAL_CHUNK, n)
    return chunk, -(-n // chunk)


def _param_norm(params) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(p.astype(floating()) ** 2) for p in jax.tree.leaves(params)))


@functools.partial(jax.jit, static_argnames=("program",))
def evaluate(program: Program, data: DeviceData, setups: Setup, replicas: Replica) -> dict:
    """Every replica's metrics (arrays with a leading R axis)."""
    with matmul_precision(program.train.precision):
        if program.mapped:
            return jax.lax.map(lambda sr: _evaluate_one(program, data, *sr), (setups, replicas))
        return jax.vmap(lambda s, r: _evaluate_one(program, data, s, r))(setups, replicas)


def _evaluate_one(program: Program, data: DeviceData, setup: Setup, replica: Replica) -> dict:
    """One replica's core metrics, then its measures in registration order."""
    if data.x_test_CTD is None:  # the kind evaluates its whole pool (no test chunks)
        out, pool = _evaluate_pool(program, data, setup, replica)
    else:
        out, pool = _evaluate_rows(program, data, setup, replica), None
    model = make_model(program.trial)

    def logits(params, x):
        return _scaled(program, apply_model(model, params, replica.batch_stats, x, False)[0], setup)

    def loss(logits_BK, y_B):
        return loss_fn(program.train, logits_BK, y_B, program.n_classes)

    for measure in for_trial(program.trial):
        view = View(
            trial=program.trial,
            params=replica.params,
            logits=logits,
            input_embedding=kind_of(program.trial).input_embedding,
            data=data,
            setup=setup,
            pool=pool,
            measured=out,
            loss=loss,
        )
        out = out | measure.load()(view)
    return out


def _evaluate_rows(program: Program, data: DeviceData, setup: Setup, replica: Replica) -> dict:
    """Loss and error on the train rows (clean, noised, noised vs true labels) and the test set."""
    model, train, n_classes = make_model(program.trial), program.train, program.n_classes

    def measure(x, y):
        logits, _ = apply_model(model, replica.params, replica.batch_stats, x, False)
        logits = _scaled(program, logits, setup)
        wrong = (jnp.argmax(logits, -1) != y) if n_classes else jnp.zeros(y.shape, bool)
        return loss_fn(train, logits, y, n_classes), wrong, logits

    chunk, n_chunks = _chunks(program.n_rows)

    def train_chunk(carry, c):
        rows = jnp.minimum(c * chunk + jnp.arange(chunk), program.n_rows - 1)
        valid = (c * chunk + jnp.arange(chunk) < program.n_rows) & setup.mask_N[rows]
        loss, wrong, logits = measure(batch_inputs(data, setup, rows), setup.y_N[rows])
        noised = valid & setup.noised_N[rows]
        true_right = (jnp.argmax(logits, -1) == setup.y_true_N[rows]) if n_classes else wrong
        sums = {
            "loss": jnp.sum(valid * loss),
            "wrong": jnp.sum(valid & wrong),
            "wrong_clean": jnp.sum(valid & ~noised & wrong),
            "wrong_noised": jnp.sum(noised & wrong),
            "true_right_noised": jnp.sum(noised & true_right),
            "noised": jnp.sum(noised),
        }
        return jax.tree.map(jnp.add, carry, sums), None

    tr, _ = jax.lax.scan(train_chunk, {k: jnp.zeros(()) for k in TRAIN_SUMS}, jnp.arange(n_chunks))

    def test_chunk(carry, chunk_arrays):
        x_TD, y_T, m_T = chunk_arrays
        loss, wrong, _ = measure(prepare_inputs(x_TD, data.x_mean_S, data.x_std_S), y_T)
        return jax.tree.map(
            jnp.add, carry, {"loss": jnp.sum(m_T * loss), "wrong": jnp.sum(m_T * wrong)}
        ), None

    te, _ = jax.lax.scan(
        test_chunk,
        {"loss": jnp.zeros(()), "wrong": jnp.zeros(())},
        (data.x_test_CTD, data.y_test_CT, data.mask_test_CT),
    )
    n = setup.n_train.astype(floating())
    n_test = jnp.sum(data.mask_test_CT)
    n_clean = n - tr["noised"]
    out = {"param_norm": _param_norm(replica.params)}
    if not n_classes:  # regression: the objective is the squared loss
        return out | {"train_mse": tr["loss"] / n, "test_mse": te["loss"] / n_test}
    nan = jnp.asarray(jnp.nan, floating())
    return out | {
        "train_loss": tr["loss"] / n,
        "test_loss": te["loss"] / n_test,
        "train_error": tr["wrong"] / n,
        "test_error": te["wrong"] / n_test,
        "train_error_clean": jnp.where(n_clean > 0, tr["wrong_clean"] / n_clean, nan),
        "train_error_noisy": jnp.where(tr["noised"] > 0, tr["wrong_noised"] / tr["noised"], nan),
        "noisy_true_acc": jnp.where(tr["noised"] > 0, tr["true_right_noised"] / tr["noised"], nan),
    }


def _scaled(program: Program, logits: jax.Array, setup: Setup) -> jax.Array:
    """The network's output times the replica's ``output_scale`` where the program scales."""
    return logits * setup.output_scale if scales(program.trial)[1] else logits


def _pool_logits(program: Program, data: DeviceData, params, setup: Setup) -> jax.Array:
    """Logits over every row of a pool of token pairs (a modular task's table), in chunks,
    times the replica's output scale."""
    model, pairs_PD = make_model(program.trial), data.x_pool_PD
    chunk, n_chunks = _chunks(pairs_PD.shape[0])
    padded = jnp.concatenate(
        [pairs_PD, jnp.zeros((n_chunks * chunk - pairs_PD.shape[0], 2), pairs_PD.dtype)]
    )
    logits = jax.lax.map(
        lambda x: _scaled(program, apply_model(model, params, {}, x, False)[0], setup),
        padded.reshape(n_chunks, chunk, 2),
    )
    return logits.reshape(n_chunks * chunk, -1)[: pairs_PD.shape[0]]


def _evaluate_pool(
    program: Program, data: DeviceData, setup: Setup, replica: Replica
) -> tuple[dict, Pool]:
    """Train metrics on the replica's pool rows, test metrics on every other row (the test set
    of a modular task is the rest of the table), and the ``Pool`` the measures may read."""
    train, p = program.train, program.n_classes
    pairs_PD, labels_P = data.x_pool_PD, data.y_pool_P
    logits_PK = _pool_logits(program, data, replica.params, setup)
    valid = setup.mask_N
    in_train = jnp.zeros(pairs_PD.shape[0], bool).at[setup.index_N].max(valid)
    y_train = labels_P.at[setup.index_N].set(jnp.where(valid, setup.y_N, labels_P[setup.index_N]))
    noised = jnp.zeros(pairs_PD.shape[0], bool).at[setup.index_N].max(setup.noised_N)
    predicted = jnp.argmax(logits_PK, -1)
    wrong, true_right = predicted != y_train, predicted == labels_P
    test = ~in_train
    n_train, n_test = jnp.sum(in_train), jnp.sum(test)
    clean = in_train & ~noised

    def mean_over(where, values):
        return jnp.where(jnp.sum(where) > 0, jnp.sum(where * values) / jnp.sum(where), jnp.nan)

    out = {
        "param_norm": _param_norm(replica.params),
        "train_loss": mean_over(in_train, loss_fn(train, logits_PK, y_train, p)),
        "test_loss": mean_over(test, loss_fn(train, logits_PK, labels_P, p)),
        "train_error": jnp.sum(in_train & wrong) / n_train,
        "test_error": jnp.sum(test & ~true_right) / n_test,
        "train_error_clean": mean_over(clean, wrong),
        "train_error_noisy": mean_over(noised, wrong),
        "noisy_true_acc": mean_over(noised, true_right),
    }
    return out, Pool(logits_PK=logits_PK, train_labels_P=y_train, in_train_P=in_train)
