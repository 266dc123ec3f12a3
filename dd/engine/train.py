"""Training a pack of networks: the host side of ``dd.engine.step`` and ``dd.engine.evaluate``.

``train_pack`` draws every replica's data from its seed, initialises the replicas, trains
them from one evaluation epoch to the next with the pack's step loop, measures them, and
checkpoints. How the replicas are combined is chosen per device kind and family from measured
step times (``execution_plan``, ``dd.engine.costs``): vmapped in one program, one after another in
the same single-replica program, or side by side in block-diagonal dense programs
(``dd.engine.block``). A trial gives the same numbers alone or in any pack, whichever the plan.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from dd.engine import block, checkpoint as ckpt, hooks
from dd.engine.costs import PLANS, choose, cut, load_table
from dd.engine.data import load_dataset
from dd.engine.device_data import to_device
from dd.engine.evaluate import EVAL_CHUNK
from dd.engine.memory import check_fits, is_out_of_memory
from dd.engine.options import PackOptions
from dd.engine.padding import unpad
from dd.engine.profile import PackProfile
from dd.engine.programs import prepare, train_to
from dd.engine.step import Program
from dd.models.measures import for_trial
from dd.models.precision import host_floating, x64
from dd.models.registry import kind_of, n_params
from dd.models.rng import scoped
from dd.spec.config import Train, Trial

GPU_VMAP_CONV_WIDTH = 32  # without a cost table: conv nets wider than this go one by one on a GPU
# where a pack's replicas run one after another inside its program (``lax.map``) instead of
# vmapped: XLA's CPU backend rounds a vmapped pack's reductions, transposed matmuls and
# softmax differently with the pack's size (a lone replica about 1e-7 relative off after 30
# epochs), a mapped replica computes the numbers of a pack of one, so a trial's rows are bit for
# bit the same alone or in any pack of its program; measured at about the vmapped pack's speed
# (benchmarks/replica_map.py, docs/bench.md)
MAPPED_PLATFORMS = ("cpu",)


class Plan(NamedTuple):
    """How a pack trains: its step ``loop`` ("scan" or "host", ``dd.engine.step.Program``) and
    ``layout``: "sequential" (one replica at a time in the one-replica program), "vmap" (one
    vmapped program, grouped convolutions) or "block" (block-diagonal dense programs,
    ``dd.engine.block``) of widths summing up to ``block_width`` each (0: the whole pack in one)."""

    loop: str
    layout: str
    block_width: int = 0


def execution_plan(
    trial: Trial,
    widths: list[int] | None = None,
    execution: str = "auto",
    *,
    platform: str | None = None,
    device_kind: str | None = None,
) -> Plan:
    """The plan of a pack whose program trial is ``trial`` and whose replicas have the own
    model ``widths`` (default: one replica of the program's width).

    The loop, by measurement (docs/bench.md): XLA's CPU backend runs a convolution 17-73x
    slower inside ``lax.scan`` than from a host loop over the compiled step, so conv nets on
    CPU take the host loop; everything else scans. The layout: ``execution`` when it is not
    "auto"; else the cheapest per replica-step in the device kind's measured cost table
    (``dd.engine.costs``: sequential, vmapped and block-packed step times, estimated for these
    widths; block packs off the CPU only); where the table has no entry, the rule measured
    before it: MLPs and transformers vmapped, conv nets one by one on CPU (a vmapped pack
    2-3x slower there), vmapped on a GPU up to ``GPU_VMAP_CONV_WIDTH`` (an H100 trains
    1.6-2.9x more narrow CNNs per second so, while at k = 64 one replica fills it and the
    pack's grouped convolutions are slower).
    """
    if execution != "auto" and execution not in PLANS:
        raise ValueError(f"resources.execution must be auto or one of {', '.join(PLANS)}")
    platform = platform or jax.default_backend()
    family = kind_of(trial)
    conv = family.convolutional(trial)
    loop = "host" if conv and platform == "cpu" else "scan"
    if execution == "block" and not block.supports(trial):
        what = "float64 packs" if trial.train.precision == "float64" else f"{family.name} networks"
        raise ValueError(f"resources.execution: {what} have no block packing")
    if execution != "auto":
        return Plan(loop, execution)
    widths = widths or [trial.model.width]
    if len(widths) > 1:
        # not block on a CPU: it won per step there, but each width mix compiles its own
        # program, which the step table does not price, and the whole mnist1d_cnn spec's
        # narrow pack took 201 s block-packed against 135 s one by one (docs/bench.md)
        blocks = block.supports(trial) and platform != "cpu"
        plans = ("sequential", "vmap") + (("block",) if blocks else ())
        table = load_table(device_kind or jax.devices()[0].device_kind)
        choice = choose(table, family.name, trial.model.width, widths, plans)
        if choice is not None:
            return Plan(loop, choice.plan, choice.block_width)
    if not conv:
        return Plan(loop, "vmap")
    if platform == "cpu" or trial.model.width > GPU_VMAP_CONV_WIDTH:
        return Plan(loop, "sequential")
    return Plan(loop, "vmap")


def with_orthogonal_grad(trial: Trial) -> Trial:
    """``trial`` as a program with the perpendicular gradient: each replica reads its own
    on/off, so a pack key that erased the setting trains on and off trials together."""
    return dataclasses.replace(trial, train=dataclasses.replace(trial.train, orthogonal_grad=True))


def eval_epochs(train: Train) -> list[int]:
    """The evaluation schedule: ``eval_points`` epochs, log or linear, always the last, and
    the ``eval_extra`` window's epochs (rounded, each epoch once)."""
    if train.eval_spacing == "log":
        points = np.geomspace(1, train.epochs, train.eval_points)
    else:
        points = np.linspace(train.epochs / train.eval_points, train.epochs, train.eval_points)
    extra = train.eval_extra
    if extra.on:
        space = np.geomspace if extra.spacing == "log" else np.linspace
        points = np.concatenate([points, space(extra.start, extra.stop, extra.points)])
    return sorted({int(round(p)) for p in points} | {train.epochs})


def _stack(trees: list):
    """Host trees of the pack's groups as one tree over all its replicas."""
    return jax.tree.map(lambda *xs: np.concatenate(xs), *trees)


def _split(tree, groups: list[list[int]]) -> list:
    """A host tree over all replicas cut into the groups' trees (contiguous groups)."""
    return [jax.tree.map(lambda a, g=g: a[g[0] : g[-1] + 1], tree) for g in groups]


def _next_stop(done: int, target: int, rate: float | None, seconds: float) -> int:
    """The epoch to train to next: ``target``, or sooner so that the call lasts about
    ``seconds`` at ``rate`` epochs per second (one epoch while no rate is measured)."""
    if not seconds:
        return target
    if not rate:
        return min(target, done + 1)
    return min(target, done + max(1, int(seconds * rate)))


def replica_values(trials: list[Trial]) -> dict[str, np.ndarray]:
    """What differs between a pack's replicas, as host arrays with a leading R axis (the
    model's scales only where one is not 1.0: a pack without them places nothing more on
    the device, so its numbers stay those of dd before the scales, bit for bit on XLA CPU; the
    perpendicular gradient's on/off is placed only where the program has the transform,
    ``dd.engine.programs.prepare``); float64 in a float64 pack."""
    real = host_floating(trials[0].train.precision)  # one pack, one precision
    scaled = {
        name: np.asarray([getattr(t.model, name, 1.0) for t in trials], real)
        for name in ("init_scale", "output_scale")
        if any(getattr(t.model, name, 1.0) != 1.0 for t in trials)
    }
    return scaled | {
        "seed": np.asarray([t.seed for t in trials], np.uint32),
        "n_train": np.asarray([t.data.n_train for t in trials], np.int32),
        "label_noise": np.asarray([getattr(t.data, "label_noise", 0.0) for t in trials], real),
        "lr": np.asarray([t.train.lr for t in trials], real),
        "weight_decay": np.asarray([t.train.weight_decay for t in trials], real),
        "grokfast_alpha": np.asarray([t.train.grokfast_alpha for t in trials], real),
        "grokfast_lamb": np.asarray([t.train.grokfast_lamb for t in trials], real),
        "orthogonal_grad": np.asarray([t.train.orthogonal_grad for t in trials], real),
        "width": np.asarray([t.model.width for t in trials], np.int32),
    }


def in_precision(run: Callable) -> Callable:
    """``run(trials, key_trial, ...)`` inside the pack's precision scope
    (``dd.models.precision.x64``): a float64 pack traces, compiles and runs with JAX's x64 on,
    every other pack with it off, in this thread only, so float32 packs before and after a
    float64 one in the same worker compute what they would alone."""

    @functools.wraps(run)
    def scoped_run(trials: list[Trial], key_trial: Trial, *args: Any, **kwargs: Any) -> Any:
        with x64(key_trial.train.precision):
            return run(trials, key_trial, *args, **kwargs)

    return scoped_run


@in_precision
@scoped()
def train_pack(
    trials: list[Trial], key_trial: Trial, options: PackOptions | None = None
) -> list[list[dict[str, Any]]]:
    """Train every trial of a pack; returns, per trial, one row per evaluation epoch.

    ``key_trial`` is the pack key (``dd.plan.packs.pack_key``); ``options`` say how the pack
    is laid out, saved and watched (``dd.engine.options.PackOptions``; the worker builds them
    once per pack). A resumed checkpoint ends with the same numbers: the data order and
    augmentation draws derive from (trial key, epoch, step).
    """
    o = options or PackOptions()
    profile = o.profile or PackProfile()
    if any(t.train.orthogonal_grad for t in trials):  # whatever key the caller passed
        key_trial = with_orthogonal_grad(key_trial)
    hooks.call("before_compile", trials=trials)
    widths = [t.model.width for t in trials]
    plan = execution_plan(key_trial, widths, o.execution)
    loop = o.loop or plan.loop
    with profile.phase("data"):
        dataset = load_dataset(key_trial.data, o.locations)
        n_rows = o.n_rows or max(t.data.n_train for t in trials)
        program = Program(
            trial=key_trial,
            n_rows=n_rows,
            n_classes=dataset.n_classes,
            augment=bool(getattr(key_trial.data, "augment", False)),
            loop=loop,
            mapped=jax.default_backend() in MAPPED_PLATFORMS,
        )
        if program.steps_per_epoch == 0:
            raise ValueError("batch_size exceeds every n_train of the pack")  # validated earlier
        data = profile.placed(to_device(dataset, key_trial.data, EVAL_CHUNK))
    groups = {
        "sequential": [[r] for r in range(len(trials))],
        "vmap": [list(range(len(trials)))],
        "block": cut(widths, plan.block_width),
    }[plan.layout]
    programs = [
        dataclasses.replace(program, block=tuple(widths[r] for r in g))
        if plan.layout == "block"
        else program
        for g in groups
    ]
    values = replica_values(trials)
    with profile.phase("train"):
        prepared = [
            prepare(program, data, profile.to_device(jax.tree.map(lambda a, g=g: a[g], values)))
            for g in groups
        ]
    group_setups = [s for s, _ in prepared]
    replicas = [r for _, r in prepared]
    if o.memory_budget is not None:
        with profile.phase("train"):
            check_fits(programs[0], data, group_setups[0], replicas[0], o.memory_budget)
    steps_per_epoch = [1 if program.full_batch else t.data.n_train // program.batch for t in trials]
    counts = [n_params(t) for t in trials]
    wide = key_trial.model.width  # the program width the rows record
    rows: list[list[dict[str, Any]]] = [[] for _ in trials]
    done = 0
    checkpoint, checkpoint_every = o.checkpoint, o.checkpoint_every
    if checkpoint is not None and checkpoint.exists():
        template = _stack(profile.to_host(replicas))
        state, done, rows = ckpt.restore(checkpoint, template, len(trials))
        replicas = [profile.to_device(part) for part in _split(state, groups)]
    resumed_from = done
    epochs = key_trial.train.epochs
    evals = set(eval_epochs(key_trial.train))
    saves = (
        set(range(checkpoint_every, epochs, checkpoint_every))
        if checkpoint is not None and checkpoint_every > 0
        else set()
    )
    timed = o.checkpoint_seconds if checkpoint is not None else 0.0
    told = o.progress_seconds if o.on_progress is not None else 0.0
    every = min(s for s in (timed, told, float("inf")) if s)
    rate, saved_at = None, time.monotonic()
    for target in sorted(evals | saves):
        while done < target:
            epoch = _next_stop(done, target, rate, 0.0 if every == float("inf") else every)
            measure = epoch == target and epoch in evals
            started = time.monotonic()
            with profile.phase("train"):
                advanced = [
                    train_to(p, data, s, r, done, epoch, measure)
                    for p, s, r in zip(programs, group_setups, replicas, strict=True)
                ]
                replicas = [r for r, _ in advanced]
                jax.block_until_ready(replicas)
            rate = (epoch - done) / max(time.monotonic() - started, 1e-9)
            done = epoch
            if o.on_progress is not None:
                o.on_progress(done)
            if measure:
                with profile.phase("evaluate"):
                    metrics, alive = profile.to_host(
                        ([m for _, m in advanced], [r.alive for r in replicas])
                    )
                    metrics, alive = _stack(metrics), np.concatenate(alive)
                    for r in range(len(trials)):
                        row = {"epoch": epoch, "step": epoch * steps_per_epoch[r]}
                        if alive[r]:
                            row |= _host_metrics({k: v[r] for k, v in metrics.items()}, key_trial)
                        rows[r].append(row | {"n_params": counts[r], "program_width": wide})
                if o.on_evaluation is not None:
                    o.on_evaluation(epoch, rows)
            if epoch in saves or (timed and done < epochs and time.monotonic() - saved_at >= timed):
                ckpt.save(checkpoint, _stack(profile.to_host(replicas)), done, rows)
                saved_at = time.monotonic()
                hooks.call(
                    "after_checkpoint", path=checkpoint, epoch=done, resumed_from=resumed_from
                )
    with profile.phase("evaluate"):
        final = _stack(profile.to_host([(r.params, r.diverged_step) for r in replicas]))
    params_R, diverged = final
    pads = kind_of(key_trial).pads(key_trial)
    for r, path in enumerate(o.param_files or []):
        params = jax.tree.map(lambda a, r=r: a[r], params_R)
        if pads:
            params = unpad(key_trial, params, trials[r].model.width)  # the trial's own shapes
        ckpt.save_params(path, params)
    for r, trial_rows in enumerate(rows):
        for row in trial_rows:
            row.setdefault("n_params", counts[r])  # rows restored from an older checkpoint
            row.setdefault("program_width", wide)
            if diverged[r] >= 0:
                row["status"], row["diverged_step"] = "diverged", int(diverged[r])
    return rows


def train_splitting(trials: list, key_trial, options: PackOptions) -> tuple[list, int]:
    """``dd.engine.train.train_pack``, split in halves (recursively, down to one replica) when it
    runs out of memory, each half with its own checkpoint (``PackOptions.part``); returns the
    rows and how many splits it took."""
    try:
        return train_pack(trials, key_trial, options), 0
    except Exception as e:
        if len(trials) == 1 or not is_out_of_memory(e):
            raise
    half = (len(trials) + 1) // 2
    out, splits = [], 1
    for side, part in (("a", slice(0, half)), ("b", slice(half, None))):
        part_options = options.part(part, side)
        rows, more = train_splitting(trials[part], key_trial, part_options)
        if part_options.checkpoint is not None:
            part_options.checkpoint.unlink(missing_ok=True)
        out += rows
        splits += more
    return out, splits


def _host_metrics(values: dict[str, np.ndarray], trial: Trial) -> dict[str, Any]:
    """One replica's measured values as row entries: scalars as numbers, vectors as lists,
    then each measure's host side (``Measure.to_row``: the modular key frequencies)."""
    row = {
        k: v.tolist() if v.ndim else (int(v) if v.dtype.kind == "i" else float(v))
        for k, v in values.items()
    }
    for measure in for_trial(trial):
        row = measure.to_row(row)
    return row
