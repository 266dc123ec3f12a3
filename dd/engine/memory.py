"""How much memory a pack needs, and what to do when it does not fit.

Packs are first cut by an estimate (``bytes_per_replica``) against ``resources.memory_gb``.
On a GPU the worker then asks the compiled program itself (XLA's ``memory_analysis``) how
many bytes it needs and compares that with the device's limit (``check_fits``): the program
that steps the pack, ``advance`` or ``host_step``, with its evaluation inside it (evaluating
1000-example chunks can need several times a training step's memory); a program too large for it,
or one that runs out of memory anyway (``RESOURCE_EXHAUSTED``), raises ``OutOfMemory`` and
the pack worker splits the pack in halves (``dd.run.worker``), down to one replica.
"""

from __future__ import annotations

import jax
import numpy as np

from dd.datasets.registry import kind_of as data_kind
from dd.engine.device_data import DeviceData, Setup
from dd.engine.evaluate import EVAL_CHUNK
from dd.engine.programs import advance, host_step
from dd.engine.step import Program, Replica
from dd.models.registry import kind_of, n_params, program_trial
from dd.spec.config import Trial


class OutOfMemory(RuntimeError):
    """A pack's program does not fit the memory it may use."""


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is XLA's out-of-memory error (or ours)."""
    return isinstance(error, OutOfMemory) or "RESOURCE_EXHAUSTED" in str(error)


def compiled_bytes(compiled) -> int:
    """Device bytes a compiled program holds while it runs: arguments, outputs (less those
    that reuse donated arguments), temporaries and code."""
    stats = compiled.memory_analysis()
    if stats is None:
        return 0
    return (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        - stats.alias_size_in_bytes
        + stats.temp_size_in_bytes
        + stats.generated_code_size_in_bytes
    )


def check_fits(
    program: Program, data: DeviceData, setups: Setup, replicas: Replica, budget: int
) -> None:
    """Raise ``OutOfMemory`` if the program that steps these replicas needs more than
    ``budget`` bytes. It is compiled with measuring on: the evaluation runs inside it
    (``lax.cond``), so its chunks' memory is counted with the training step's."""
    flag = np.bool_(True)
    if program.loop == "host":
        orders_RN = np.zeros((jax.tree.leaves(setups)[0].shape[0], program.n_rows), np.int32)
        lowered = host_step.lower(
            program, data, setups, replicas, orders_RN, np.int32(0), np.int32(0), flag
        )
    else:
        lowered = advance.lower(program, data, setups, replicas, np.int32(0), np.int32(1), flag)
    need = compiled_bytes(lowered.compile())
    if need > budget:
        n = jax.tree.leaves(setups)[0].shape[0]
        raise OutOfMemory(
            f"RESOURCE_EXHAUSTED: the compiled program needs {need:,} bytes "
            f"for {n} replicas; the budget is {budget:,}"
        )


def device_budget(packs: int = 1) -> int | None:
    """Bytes this worker's accelerator may give each of the ``packs`` it runs at once (its
    allocator's limit, which ``XLA_PYTHON_CLIENT_MEM_FRACTION`` already scales for a shared
    GPU, divided among them); None on a CPU."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        return None
    stats = device.memory_stats() or {}
    limit = stats.get("bytes_limit")
    return int(limit) // packs if limit else None


def bytes_per_replica(trial: Trial) -> int:
    """A float32 estimate of one replica's memory, to cut packs before anything compiles:
    parameters, gradients and optimizer state (5 copies), the activations a training batch
    keeps for the backward pass, or an evaluation chunk's (forward only), whichever is
    larger, the replica's row indices, and what the data kind's evaluation holds beyond a
    chunk (``DatasetKind.eval_floats``: the whole table's logits of a modular task)."""
    program = program_trial(trial)
    per_example = kind_of(program).activation_floats(program)
    batch = trial.train.batch_size
    batch = trial.data.n_train if batch == "full" else batch
    activations = max(3 * batch * per_example, EVAL_CHUNK * per_example)
    evaluation = data_kind(trial.data).eval_floats(trial.data)
    # the Grokfast filter keeps a gradient average (EMA) or the last window of gradients (MA)
    copies = 5 + (max(1, trial.train.grokfast_window) if trial.train.grokfast else 0)
    return 4 * (copies * n_params(program) + activations + 5 * trial.data.n_train + evaluation)
