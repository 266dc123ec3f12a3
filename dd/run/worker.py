"""The pack worker: what runs inside a Ray actor. It runs its packs (a closed-form fit, or
training that splits on out-of-memory), one at a time or several from threads, and writes
each pack's Parquet file itself, so results never travel through the driver.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import NamedTuple

from dd.datasets.base import Locations
from dd.engine import hooks
from dd.engine.options import PackOptions
from dd.engine.profile import PackProfile
from dd.plan.packs import Pack
from dd.plan.runners import runner_of
from dd.plan.sweep import Resources
from dd.run.eta import pack_rate
from dd.spec.errors import DDError
from dd.store.paths import StorePath
from dd.store.sweep import SweepStore

_cache_lock = threading.Lock()


class AcceleratorError(DDError):
    """A pack asked for an accelerator that its worker does not have."""


def run_pack(
    sweep: str,
    results_root: str,
    pack: Pack,
    resources: Resources,
    compile_cache: str | None = None,
    profile: PackProfile | None = None,
    locations: Locations | None = None,
) -> dict:
    """Fit or train every trial of ``pack`` and write its Parquet file (runs on a worker).

    A training pack checkpoints to ``<sweep>/checkpoints/`` when the spec asks for it and
    resumes from there after a crash; the checkpoint goes once the pack's file is written.
    A pack that runs out of memory is split in halves that run one after the other, down to
    one replica (``dd.engine.memory``). With ``compile_cache`` (a folder, shared by the workers when
    it is on shared storage) a program compiled once, by any worker, is loaded rather than
    compiled again. ``profile`` (a fresh one by default) receives where the pack's time went;
    it is stored as ``profiles/pack-<id>.json`` and returned in the result. ``locations`` (the
    driver's settings; default ``Locations()``) say where the pack's dataset files are: this
    worker's environment is not read.
    """
    if compile_cache:
        use_compile_cache(compile_cache)
    check_accelerator(resources)
    store = SweepStore(results_root, sweep)
    profile = profile or PackProfile()
    widths = sorted({w for t in pack.trials if (w := getattr(t.model, "width", None))})
    store.drop_partial(pack.id)  # a rerun's rows so far replace a stopped attempt's
    started_at = time.time()
    with store.running(pack.id, trials=len(pack.trials), widths=widths) as update:
        result = _run_pack(store, pack, resources, profile, update, locations or Locations())
    record = {"pack_id": pack.id, "trials": len(pack.trials), **profile.record()}
    record["worker_pid"] = os.getpid()  # the same pid in two sweeps: a warm worker ran both
    store.write_profile(pack.id, record)
    # the wall clock at its start and end, and its first progress sample: the driver's ETA
    return result | {"profile": record, "started_at": started_at, "ended_at": time.time()}


def use_compile_cache(folder: str) -> None:
    """Keep JAX's persistent compilation cache in ``folder`` (~ expanded on this worker); set
    once (the packs a worker runs at once must not reconfigure it under each other)."""
    import jax

    folder = os.path.expanduser(folder)
    with _cache_lock:
        if jax.config.jax_compilation_cache_dir != folder:
            jax.config.update("jax_compilation_cache_dir", folder)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def check_accelerator(resources: Resources) -> None:
    """A pack given GPUs must find JAX's GPU backend: the CPU build of JAX on a GPU node would
    otherwise train every pack on the CPU without a word."""
    import jax

    platform = jax.default_backend()
    if resources.gpus == 0 or platform == "gpu":
        return
    if not any(hooks.call("accelerator_missing", resources=resources, platform=platform)):
        raise AcceleratorError(
            f"resources.gpus is {resources.gpus:g} but JAX on this worker has no GPU backend "
            f"(platform {platform}): install the CUDA build of JAX ('make install ACCEL=cuda') "
            "or set resources.gpus: 0"
        )


def _run_pack(
    store: SweepStore,
    pack: Pack,
    resources: Resources,
    profile: PackProfile,
    update,
    locations: Locations,
) -> dict:

    from dd.engine.data import load_dataset

    start = time.perf_counter()
    with profile.phase("data"):  # the engine's own load_dataset then finds it cached
        load_dataset(pack.trials[0].data, locations)
    run = RUN_PACK[runner_of(pack.trials[0]).name]
    ran = run(store, pack, resources, profile, update, locations)
    rows, checkpoint, param_files = ran.rows[: len(pack.trials)], ran.checkpoint, ran.param_files
    wall = time.perf_counter() - start
    with profile.phase("write"):
        try:
            store.write_pack(pack.id, rows_table(store, pack, rows, wall))
            if checkpoint is not None and not resources.keep_checkpoints:
                checkpoint.unlink(missing_ok=True)
        except Exception:  # no trained parameters outlive the rows they belong to
            for path in param_files or []:
                path.unlink(missing_ok=True)
            raise
    return {
        "pack_id": pack.id,
        "trials": len(pack.trials),
        "wall_time_s": wall,
        "oom_splits": ran.splits,
        **ran.first,
    }


class Ran(NamedTuple):
    """What running a pack gave: its rows per trial, the out-of-memory splits it took, and the
    files that belong with its rows (its checkpoint, its trained parameters)."""

    rows: list
    splits: int = 0
    checkpoint: StorePath | None = None
    param_files: list | None = None
    first: dict = {}  # the first evaluation's figures (LiveRows.first)


def _fit(
    store: SweepStore,
    pack: Pack,
    resources: Resources,
    profile: PackProfile,
    update,
    locations: Locations,
) -> Ran:
    """A closed-form pack: one fit, one row per trial; no state to checkpoint."""
    from dd.engine.closed_form import fit_pack

    with profile.phase("train"):
        fits = fit_pack(pack.padded_trials(), pack.n_rows, locations)
        return Ran(rows=[[metrics] for metrics in fits])


def _train(
    store: SweepStore,
    pack: Pack,
    resources: Resources,
    profile: PackProfile,
    update,
    locations: Locations,
) -> Ran:
    """A training pack, checkpointed as ``resources`` say, its rows so far written as it runs
    (``LiveRows``), split in halves when it does not fit the device."""
    from dd.engine.train import train_splitting

    live = LiveRows(store, pack, update)
    options = pack_options(store, pack, resources, profile, locations, live)
    rows, splits = train_splitting(pack.padded_trials(), pack.key, options)
    return Ran(rows, splits, options.checkpoint, options.param_files, live.first or {})


def pack_options(
    store: SweepStore,
    pack: Pack,
    resources: Resources,
    profile: PackProfile,
    locations: Locations,
    live: LiveRows,
) -> PackOptions:
    """The engine's options for ``pack`` (``dd.engine.options.PackOptions``), built once:
    its program rows, the plan and memory budget ``resources`` give, its checkpoint and
    parameter files in ``store``, the dataset ``locations``, its ``live`` rows and profile."""
    from dd.engine.memory import device_budget

    saves = resources.checkpoint_every or resources.checkpoint_minutes > 0
    return PackOptions(
        n_rows=pack.n_rows,
        execution=resources.execution,
        memory_budget=device_budget(resources.packs_per_worker()),
        locations=locations,
        checkpoint=store.checkpoint_path(pack.id) if saves else None,
        checkpoint_every=resources.checkpoint_every,
        checkpoint_seconds=60 * resources.checkpoint_minutes,
        param_files=(
            tuple(store.params_path(tid) for tid in pack.trial_ids)
            if pack.trials[0].train.save_params
            else None
        ),
        on_evaluation=live,
        on_progress=live.progress,
        progress_seconds=LiveRows.EVERY_S,
        profile=profile,
    )


RUN_PACK = {"fit": _fit, "train": _train}  # by runner name (dd.plan.runners)


def rows_table(store: SweepStore, pack: Pack, rows: list, wall: float, partial: bool = False):
    """The pack's rows as its results table (``dd.store.schema.pack_table``), on this worker's
    device: the final file's, or (``partial``) a running pack's rows so far."""
    import jax

    from dd.store.schema import pack_table

    device = jax.devices()[0]
    return pack_table(
        sweep=store.name,
        pack_id=pack.id,
        trial_ids=list(pack.trial_ids),
        trials=list(pack.trials),
        rows=rows,
        wall_time_s=wall,
        jax_version=jax.__version__,
        platform=device.platform,
        device_kind=device.device_kind,
        partial=partial,
    )


class LiveRows:
    """A training pack's live progress. ``progress(epoch)``, after each call to the device
    (about every ``EVERY_S`` seconds: ``dd.engine.options.PackOptions.progress_seconds``),
    writes the epoch reached to the running record with the wall clock, the first such sample
    (taken after the first epoch, so compiling is out of the rate), and the steady rate and
    ETA between the two (``dd.run.eta``). At each evaluation point (``__call__``): the epoch
    and mean errors, its rows so far as the pack's partial file (``partial`` true; rewritten
    at most every ``EVERY_S`` seconds, and not at the last epoch, whose final file follows at
    once), then the ``after_evaluation`` hook. Halves of a pack split on out-of-memory
    report progress only."""

    EVERY_S = 2.0

    def __init__(self, store: SweepStore, pack: Pack, update):
        self.store, self.pack, self.update = store, pack, update
        self.started, self.written = time.perf_counter(), -float("inf")
        self.epochs = pack.trials[0].train.epochs
        self.first: dict | None = None
        from dd.engine.train import eval_epochs  # the engine loads JAX: on the worker only

        self.evals = eval_epochs(pack.trials[0].train)

    def progress(self, epoch: int) -> None:
        now = time.time()
        if self.first is None:
            self.first = {"first_at": now, "first_reached": epoch}
        record = {"reached": epoch, "epochs": self.epochs, "updated_at": now, **self.first}
        rate = pack_rate(record)
        if rate:
            record |= {"epochs_per_s": rate, "eta_s": (self.epochs - epoch) / rate}
        self.update(**record)

    def __call__(self, epoch: int, rows: list[list[dict]]) -> None:
        now = time.perf_counter()
        last = [r[-1] for r in rows if r]
        mean = {m: _mean([row.get(m) for row in last]) for m in ("test_error", "train_error")}
        self.update(
            epoch=epoch,
            epochs=self.epochs,
            **mean,
            next_epoch=next((e for e in self.evals if e > epoch), None),
        )
        whole = len(rows) >= len(self.pack.trials)
        if whole and epoch < self.epochs and now - self.written >= self.EVERY_S:
            so_far = [list(r) for r in rows[: len(self.pack.trials)]]
            table = rows_table(self.store, self.pack, so_far, now - self.started, partial=True)
            self.store.write_partial(self.pack.id, table)
            self.written = now
        hooks.call("after_evaluation", store=self.store, pack_id=self.pack.id, epoch=epoch)


def _mean(values: list) -> float | None:
    found = [v for v in values if v is not None and v == v]
    return sum(found) / len(found) if found else None


class PackWorker:
    """A long-lived Ray actor that runs packs one after another, or ``packs_in_flight`` at
    once from its threads (``dd.run.pool.WorkerKind``: one process, one CUDA context per GPU).

    Ray binds an actor to the GPUs it was created with for its whole life, and CUDA binds a
    process to the device of its first use, so a pack always runs on the GPU Ray assigned
    (a reused task process could be handed another GPU's CUDA_VISIBLE_DEVICES while CUDA
    stays on the first). Compiled programs stay warm across the packs a worker runs.
    """

    def __init__(
        self,
        compile_cache: str | None,
        cpu_only: bool = False,
        locations: Locations | None = None,
        cost_tables: str | None = None,
    ):
        from dd.engine.costs import use_tables

        use_tables(cost_tables)  # the driver's DD_COST_TABLES: packs plan as the dry run did
        self.visible_at_start = os.environ.get("CUDA_VISIBLE_DEVICES")
        if cpu_only:  # a pack given no GPU must not take one (JAX would use any it sees)
            import jax

            jax.config.update("jax_platforms", "cpu")
        if compile_cache:
            use_compile_cache(compile_cache)
        self.compile_cache = compile_cache
        self.locations = locations or Locations()
        from dd.engine import train  # noqa: F401  (the engine's imports, while the driver still plans)

    def placement(self) -> dict:
        """Where this worker runs: process, GPUs Ray assigned, CUDA_VISIBLE_DEVICES at its
        start and now."""
        import ray

        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "ray_gpu_ids": [
                str(g) for g in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
            ],
            "visible_at_start": self.visible_at_start,
            "visible_now": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    def run(
        self, sweep: str, results_root: str, pack: Pack, resources: Resources, sent: float
    ) -> dict:
        """Run ``pack``; ``sent`` is the driver's clock (``time.time()``) when it sent the
        pack, so the profile's ``start`` is the wait for this worker: its start for its first
        pack, a hand-over for later ones."""
        profile = PackProfile()
        profile.phases["start"] = max(time.time() - sent, 0.0)
        placement = self.placement()
        return (
            run_pack(
                sweep,
                results_root,
                pack,
                resources,
                self.compile_cache,
                profile,
                self.locations,
            )
            | placement
        )


def worker_env(resources: Resources) -> dict[str, str]:
    """Environment for pack workers: a pack given a fraction of a GPU gets that fraction of
    its memory (less a margin for XLA's own use), allocated as needed, so that the packs
    sharing one GPU fit; a worker running several packs on whole GPUs takes 90% of their
    memory (``dd.engine.memory.device_budget`` divides it among the packs); one pack keeps XLA's
    defaults. ``deterministic`` adds XLA's
    deterministic GPU operations to the workers' XLA_FLAGS."""
    env = {}
    if 0 < resources.gpus < 1:
        env |= {
            "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
            "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{0.9 * resources.gpus:.3f}",
        }
    elif resources.gpus >= 1 and resources.packs_per_worker() > 1:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = "0.900"  # shared by its packs in flight
    if resources.deterministic:
        flags = os.environ.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()
    return env
