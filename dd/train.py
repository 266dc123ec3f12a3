"""Training a pack of networks: the host side of ``dd.step`` and ``dd.evaluate``.

``train_pack`` draws every replica's data from its seed, initialises the replicas, trains
them from one evaluation epoch to the next with the pack's step loop, measures them, and
checkpoints. How the replicas are combined is chosen per backend and family
(``execution_plan``): vmapped in one program, or one after another, each in the same
single-replica program. A trial gives the same numbers alone or in any pack either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dd import checkpoint as ckpt, hooks
from dd.config import Train, Trial
from dd.data import load_dataset
from dd.device_data import draw_setups, to_device
from dd.evaluate import EVAL_CHUNK, evaluate
from dd.memory import OutOfMemory, compiled_bytes
from dd.models.registry import kind_of, n_params
from dd.padding import unpad
from dd.rng import scoped
from dd.step import Program, init_replicas, train_epochs, train_epochs_on_device

GPU_VMAP_CONV_WIDTH = 32  # conv nets wider than this train replica by replica on a GPU


def execution_plan(trial: Trial, platform: str | None = None) -> tuple[str, bool]:
    """(step loop, replicas one after another?) for a pack whose program trial is ``trial``.

    Chosen by measurement (docs/bench.md). XLA's CPU backend runs a convolution 17-73x
    slower inside ``lax.scan`` than from a host loop over the compiled step, and a vmapped
    pack of conv nets 2-3x slower than its replicas one by one: conv nets on CPU take the
    host loop and sequential replicas. On an H100 a vmapped pack of 16 narrow CNNs trains
    1.6-2.9x more replicas per second than one at a time, while at k = 64 one replica fills
    the GPU and the pack's grouped convolutions are slower (0.9x): conv nets wider than
    ``GPU_VMAP_CONV_WIDTH`` go one after another there. MLPs and transformers scan vmapped
    packs everywhere.
    """
    platform = platform or jax.default_backend()
    family = kind_of(trial)
    if not family.convolutional(trial):
        return "scan", False
    if platform == "cpu":
        return "host", True
    return "scan", trial.model.width > GPU_VMAP_CONV_WIDTH


def eval_epochs(train: Train) -> list[int]:
    """The evaluation schedule: ``eval_points`` epochs, log or linear, always the last."""
    if train.eval_spacing == "log":
        points = np.geomspace(1, train.epochs, train.eval_points)
    else:
        points = np.linspace(train.epochs / train.eval_points, train.epochs, train.eval_points)
    return sorted({int(round(p)) for p in points} | {train.epochs})


def _take(tree, index: list[int]):
    """The replicas ``index`` of a stacked tree; all of them in order is the tree itself (no
    gather program to compile for a vmapped pack's one group)."""
    if index == list(range(len(jax.tree.leaves(tree)[0]))):
        return tree
    return jax.tree.map(lambda a: a[np.asarray(index)], tree)


def _stack(trees: list):
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)


@scoped()
def train_pack(
    trials: list[Trial],
    key_trial: Trial,
    n_rows: int | None = None,
    *,
    checkpoint: Path | None = None,
    checkpoint_every: int = 0,
    param_files: list[Path] | None = None,
    memory_budget: int | None = None,
    loop: str | None = None,
    sequential: bool | None = None,
) -> list[list[dict[str, Any]]]:
    """Train every trial of a pack; returns, per trial, one row per evaluation epoch.

    ``key_trial`` is the pack key (``dd.packs.pack_key``), ``n_rows`` the row count replicas
    are padded to (default: the largest n_train): together they fix the compiled program.
    With ``checkpoint`` and ``checkpoint_every`` > 0 the whole state (parameters, optimizer
    state, step counts, divergence flags, the rows so far) is saved atomically every that many
    epochs, and a saved state is resumed from: the data order and augmentation draws derive
    from (trial key, epoch, step), so a resumed pack ends with the same numbers.
    ``param_files`` (one per trial) receive the final parameters (``dd.checkpoint``).
    ``memory_budget`` (bytes): raise ``OutOfMemory`` before training if the compiled
    program needs more. ``loop`` and ``sequential`` override ``execution_plan``.
    """
    hooks.call("before_compile", trials=trials)
    planned_loop, planned_sequential = execution_plan(key_trial)
    loop = loop or planned_loop
    sequential = planned_sequential if sequential is None else sequential
    dataset = load_dataset(key_trial.data)
    n_rows = n_rows or max(t.data.n_train for t in trials)
    program = Program(
        trial=key_trial,
        n_rows=n_rows,
        n_classes=dataset.n_classes,
        augment=bool(getattr(key_trial.data, "augment", False)),
        loop=loop,
    )
    if program.steps_per_epoch == 0:
        raise ValueError("batch_size exceeds every n_train of the pack")  # validated earlier
    data = to_device(dataset, key_trial.data, EVAL_CHUNK)
    setups = draw_setups(
        data,
        jnp.asarray([t.seed for t in trials], jnp.uint32),
        jnp.asarray([t.data.n_train for t in trials]),
        jnp.asarray([getattr(t.data, "label_noise", 0.0) for t in trials], jnp.float32),
        jnp.asarray([t.train.lr for t in trials], jnp.float32),
        jnp.asarray([t.train.weight_decay for t in trials], jnp.float32),
        n_rows=n_rows,
    )
    widths = jnp.asarray([t.model.width for t in trials])
    groups = [[r] for r in range(len(trials))] if sequential else [list(range(len(trials)))]
    group_setups = [_take(setups, g) for g in groups]
    replicas = [
        init_replicas(program, data, s, widths[np.asarray(g)])
        for s, g in zip(group_setups, groups, strict=True)
    ]
    if memory_budget is not None and loop == "scan":
        compiled = train_epochs_on_device.lower(
            program, data, group_setups[0], replicas[0], np.int32(0), np.int32(1)
        ).compile()
        need = compiled_bytes(compiled)
        if need > memory_budget:
            raise OutOfMemory(
                f"RESOURCE_EXHAUSTED: the compiled program needs {need:,} bytes "
                f"for {len(groups[0])} replicas; the budget is {memory_budget:,}"
            )
    steps_per_epoch = [1 if program.full_batch else t.data.n_train // program.batch for t in trials]
    rows: list[list[dict[str, Any]]] = [[] for _ in trials]
    done = 0
    if checkpoint is not None and checkpoint.exists():
        state, done, rows = ckpt.restore(checkpoint, _stack(replicas), len(trials))
        replicas = [_take(state, g) for g in groups]
    resumed_from = done
    epochs = key_trial.train.epochs
    evals = set(eval_epochs(key_trial.train))
    saves = (
        set(range(checkpoint_every, epochs, checkpoint_every))
        if checkpoint is not None and checkpoint_every > 0
        else set()
    )
    for epoch in sorted(evals | saves):
        if epoch <= done:
            continue
        replicas = [
            train_epochs(program, data, s, r, done, epoch)
            for s, r in zip(group_setups, replicas, strict=True)
        ]
        done = epoch
        if epoch in evals:
            metrics = _stack(
                [evaluate(program, data, s, r) for s, r in zip(group_setups, replicas, strict=True)]
            )
            metrics = jax.tree.map(np.asarray, metrics)
            alive = np.asarray(_stack([r.alive for r in replicas]))
            for r in range(len(trials)):
                row = {"epoch": epoch, "step": epoch * steps_per_epoch[r]}
                if alive[r]:
                    row |= _host_metrics({k: v[r] for k, v in metrics.items()})
                rows[r].append(row)
        if epoch in saves:
            ckpt.save(checkpoint, _stack(replicas), done, rows)
            hooks.call("after_checkpoint", path=checkpoint, epoch=epoch, resumed_from=resumed_from)
    final = _stack(replicas)
    pads = kind_of(key_trial).pads(key_trial)
    for r, path in enumerate(param_files or []):
        params = jax.tree.map(lambda a, r=r: np.asarray(a[r]), final.params)
        if pads:
            params = unpad(key_trial, params, trials[r].model.width)  # the trial's own shapes
        ckpt.save_params(path, params)
    diverged = np.asarray(final.diverged_step)
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
    row = {
        k: v.tolist() if v.ndim else (int(v) if v.dtype.kind == "i" else float(v))
        for k, v in values.items()
    }
    if "freq_order" in row:
        row["key_freqs"] = row.pop("freq_order")[: row["n_key_freqs"]]
    return row
