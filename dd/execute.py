"""Running a sweep on Ray: plan the missing trials into packs, run each pack as a Ray task.

The worker that runs a pack also writes its Parquet file, so results never travel through
the driver; the driver keeps only small summaries and the progress display. Local Ray starts
by itself; ``address`` (or $RAY_ADDRESS) joins an existing cluster.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from dd.errors import DDError, SpecError
from dd.packs import Pack, make_packs, pack_cost, pack_key
from dd.progress import Progress
from dd.spec import Resources, Spec, trial_id
from dd.store import SweepStore

DEFAULT_COMPILE_CACHE = "~/.cache/dd/jax"


class AcceleratorError(DDError):
    """A pack asked for an accelerator that its worker does not have."""


@dataclass
class SweepReport:
    """What a ``run_sweep`` call did."""

    planned: int
    already_stored: int
    packs: int = 0
    trials_run: int = 0
    failed_packs: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    placements: list[dict] = field(default_factory=list)  # per finished pack: where it ran
    oom_splits: int = 0


def compile_cache_dir(setting: str | None = None) -> str | None:
    """Where workers keep JAX's persistent compilation cache: ``setting``, else
    $DD_COMPILE_CACHE, else ~/.cache/dd/jax (expanded on each worker); "off" for none."""
    value = setting or os.environ.get("DD_COMPILE_CACHE") or DEFAULT_COMPILE_CACHE
    return None if value == "off" else value


ALLOW_CPU_FOR_GPU_PACKS = "DD_ALLOW_CPU_FOR_GPU_PACKS"  # test switch: fake GPUs on a CPU


def run_pack(
    sweep: str,
    results_root: str,
    pack: Pack,
    resources: Resources,
    compile_cache: str | None = None,
) -> dict:
    """Fit or train every trial of ``pack`` and write its Parquet file (runs on a worker).

    A training pack checkpoints to ``<sweep>/checkpoints/`` when the spec asks for it and
    resumes from there after a crash; the checkpoint goes once the pack's file is written.
    A pack that runs out of memory is split in halves that run one after the other, down to
    one replica (``dd.memory``). With ``compile_cache`` (a folder, shared by the workers when
    it is on shared storage) a program compiled once, by any worker, is loaded rather than
    compiled again.
    """
    if compile_cache:
        use_compile_cache(compile_cache)
    check_accelerator(resources)
    store = SweepStore(results_root, sweep)
    with store.running(pack.id):
        return _run_pack(store, pack, resources)


def use_compile_cache(folder: str) -> None:
    """Keep JAX's persistent compilation cache in ``folder`` (~ expanded on this worker)."""
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def check_accelerator(resources: Resources) -> None:
    """A pack given GPUs must find JAX's GPU backend: the CPU build of JAX on a GPU node would
    otherwise train every pack on the CPU without a word."""
    import jax

    platform = jax.default_backend()
    if resources.gpus > 0 and platform != "gpu" and not os.environ.get(ALLOW_CPU_FOR_GPU_PACKS):
        raise AcceleratorError(
            f"resources.gpus is {resources.gpus:g} but JAX on this worker has no GPU backend "
            f"(platform {platform}): install the CUDA build of JAX ('make install ACCEL=cuda') "
            "or set resources.gpus: 0"
        )


def _run_pack(store: SweepStore, pack: Pack, resources: Resources) -> dict:
    import jax

    from dd.schema import pack_table

    trials, padded = list(pack.trials), pack.padded_trials()
    checkpoint = (
        store.dir / "checkpoints" / f"pack-{pack.id}.msgpack"
        if resources.checkpoint_every
        else None
    )
    start = time.perf_counter()
    splits = 0
    if trials[0].model.CLOSED_FORM:
        from dd.closed_form import fit_pack

        rows = [[metrics] for metrics in fit_pack(padded, pack.n_rows)]
    else:
        from dd.memory import device_budget

        param_files = (
            [store.dir / "params" / f"{tid}.msgpack" for tid in pack.trial_ids]
            if trials[0].train.save_params
            else None
        )
        rows, splits = train_splitting(
            padded,
            pack_key(trials[0]),
            pack.n_rows,
            checkpoint=checkpoint,
            checkpoint_every=resources.checkpoint_every,
            param_files=param_files,
            memory_budget=device_budget(resources.gpus),
        )
    rows = rows[: len(trials)]
    wall = time.perf_counter() - start
    device = jax.devices()[0]
    table = pack_table(
        sweep=store.name,
        pack_id=pack.id,
        trial_ids=list(pack.trial_ids),
        trials=trials,
        rows=rows,
        wall_time_s=wall,
        jax_version=jax.__version__,
        platform=device.platform,
        device_kind=device.device_kind,
    )
    store.write_pack(pack.id, table)
    if checkpoint is not None and not resources.keep_checkpoints:
        checkpoint.unlink(missing_ok=True)
    return {
        "pack_id": pack.id,
        "trials": len(pack.trials),
        "wall_time_s": wall,
        "oom_splits": splits,
    }


def train_splitting(
    trials: list,
    key_trial,
    n_rows: int,
    *,
    checkpoint: Path | None,
    param_files: list[Path] | None,
    **options,
) -> tuple[list, int]:
    """``dd.train.train_pack``, split in halves (recursively, down to one replica) when it
    runs out of memory; returns the rows and how many splits it took."""
    from dd.memory import is_out_of_memory
    from dd.train import train_pack

    try:
        return train_pack(
            trials, key_trial, n_rows, checkpoint=checkpoint, param_files=param_files, **options
        ), 0
    except Exception as e:
        if len(trials) == 1 or not is_out_of_memory(e):
            raise
    half = (len(trials) + 1) // 2
    out, splits = [], 1
    for side, part in (("a", slice(0, half)), ("b", slice(half, None))):
        part_checkpoint = (
            checkpoint.with_name(f"{checkpoint.stem}.{side}{checkpoint.suffix}")
            if checkpoint is not None
            else None
        )
        rows, more = train_splitting(
            trials[part],
            key_trial,
            n_rows,
            checkpoint=part_checkpoint,
            param_files=param_files[part] if param_files else None,
            **options,
        )
        if part_checkpoint is not None:
            part_checkpoint.unlink(missing_ok=True)
        out += rows
        splits += more
    return out, splits


class PackWorker:
    """A long-lived Ray actor that runs packs one after another.

    Ray binds an actor to the GPUs it was created with for its whole life, and CUDA binds a
    process to the device of its first use, so a pack always runs on the GPU Ray assigned
    (a reused task process could be handed another GPU's CUDA_VISIBLE_DEVICES while CUDA
    stays on the first). Compiled programs stay warm across the packs a worker runs.
    """

    def __init__(self, compile_cache: str | None, cpu_only: bool = False):
        self.visible_at_start = os.environ.get("CUDA_VISIBLE_DEVICES")
        if cpu_only:  # a pack given no GPU must not take one (JAX would use any it sees)
            import jax

            jax.config.update("jax_platforms", "cpu")
        if compile_cache:
            use_compile_cache(compile_cache)
        self.compile_cache = compile_cache

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

    def run(self, sweep: str, results_root: str, pack: Pack, resources: Resources) -> dict:
        placement = self.placement()
        return run_pack(sweep, results_root, pack, resources, self.compile_cache) | placement


def worker_slots(resources: Resources, cluster: dict[str, float], n_packs: int) -> int:
    """How many pack workers the cluster holds at once (at least one, at most one per pack)."""
    slots = n_packs
    if resources.cpus > 0:
        slots = min(slots, int(cluster.get("CPU", 0) // resources.cpus))
    if resources.gpus > 0:
        slots = min(slots, int(round(cluster.get("GPU", 0) / resources.gpus, 6)))
    return max(1, slots)


def plan(spec: Spec, store: SweepStore) -> tuple[list[Pack], int]:
    """The packs still to run, and how many planned trials are already stored."""
    stored = store.stored_trial_ids()
    missing = [t for t in spec.trials if trial_id(t) not in stored]
    return (
        make_packs(missing, spec.resources, planned=list(spec.trials)),
        len(spec.trials) - len(missing),
    )


def check_data_files(packs: list[Pack]) -> None:
    """Read every file-backed dataset once before scheduling, so a missing or malformed file
    is one clear error (exit 2) rather than a failure in every pack."""
    from dd.data import load_dataset
    from dd.datasets.registry import kind_of

    seen = set()
    for pack in packs:
        data = max((t.data for t in pack.trials), key=lambda d: d.n_train)
        if kind_of(data).checks_files and data not in seen:
            seen.add(data)
            load_dataset(data)


def _init_ray(
    address: str | None,
    quiet: bool,
    local_cpus: int | None = None,
    debug: bool = False,
    timeout: float | None = None,
) -> None:
    """Join ``address`` (or $RAY_ADDRESS); without one, start a fresh local instance.

    ``address="local"`` matters: a bare ``ray.init()`` attaches to any Ray instance already
    running on the machine (another sweep's, say) and would queue behind its work.
    ``local_cpus`` caps a local instance (a laptop kept usable); a cluster sets its own.
    An address must answer within ``timeout`` seconds (``dd.cluster.connect_timeout``). Ray's
    own messages (its warnings, the workers' output) show with ``debug`` only.
    """
    import logging

    import ray

    from dd.cluster import connect_timeout, probe_address

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    probe_address(address, connect_timeout(timeout))
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(
            address=address,
            num_cpus=local_cpus if address == "local" else None,
            include_dashboard=False,
            log_to_driver=debug and not quiet,
            configure_logging=True,
            logging_level=logging.INFO if debug else logging.ERROR,
        )
    except (ConnectionError, TimeoutError, RuntimeError) as e:
        raise DDError(
            (
                f"--address {address}: cannot join the Ray cluster"
                if address != "local"
                else "cannot start a local Ray instance"
            )
            + f" ({_one_line(e)})"
        ) from None
    finally:  # ray.init replaces the driver's SIGTERM handler with sys.exit; keep the caller's
        if sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)


def _check_local_cpus(local_cpus: int, address: str | None, resources: Resources) -> None:
    """A CPU cap applies to a local instance only, and must fit one pack (else Ray waits
    forever)."""
    if address or os.environ.get("RAY_ADDRESS"):
        raise SpecError(
            "--cpus",
            "only a local Ray instance takes a CPU count; a cluster "
            "sets its own (drop --cpus or --address/$RAY_ADDRESS)",
        )
    if local_cpus < resources.cpus:
        raise SpecError(
            "--cpus",
            f"must be at least resources.cpus ({resources.cpus:g}) so "
            f"that one pack fits, got {local_cpus}",
        )


def run_sweep(
    spec: Spec,
    results_root: str | Path,
    *,
    address: str | None = None,
    quiet: bool = False,
    local_cpus: int | None = None,
    compile_cache: str | None = None,
    debug: bool = False,
    connect_timeout: float | None = None,
) -> SweepReport:
    """Run every planned trial of ``spec`` not yet stored under ``results_root``.

    The sweep directory is locked for this driver while it runs (``SweepStore.driver_lock``).
    ``compile_cache``: see ``compile_cache_dir``; ``debug`` and ``connect_timeout``: see
    ``_init_ray``.
    """
    if local_cpus is not None:
        _check_local_cpus(local_cpus, address, spec.resources)
    store = SweepStore(results_root, spec.name)
    ray_options = {
        "address": address,
        "quiet": quiet,
        "local_cpus": local_cpus,
        "debug": debug,
        "timeout": connect_timeout,
    }
    with store.driver_lock():
        return _run_locked(spec, store, ray_options, quiet, compile_cache_dir(compile_cache))


def _prepare(spec: Spec, store: SweepStore, packs: list[Pack], ray_options: dict) -> None:
    """Every check that can refuse the run, then the spec saved: a refused run writes
    nothing. With packs to run: their data files read, Ray joined, one pack's resources
    found on a node."""
    if packs:
        import ray

        from dd.cluster import check_fits

        check_data_files(packs)
        _init_ray(**ray_options)
        check_fits(spec.resources, ray.nodes())
    store.write_spec(spec.mapping)


def worker_env(resources: Resources) -> dict[str, str]:
    """Environment for pack workers: a pack given a fraction of a GPU gets that fraction of
    its memory (less a margin for XLA's own use), allocated as needed, so that the packs
    sharing one GPU fit; whole GPUs keep XLA's defaults. ``deterministic`` adds XLA's
    deterministic GPU operations to the workers' XLA_FLAGS."""
    env = {}
    if 0 < resources.gpus < 1:
        env |= {
            "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
            "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{0.9 * resources.gpus:.3f}",
        }
    if resources.deterministic:
        flags = os.environ.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()
    return env


def _run_locked(
    spec: Spec, store: SweepStore, ray_options: dict, quiet: bool, compile_cache: str | None
) -> SweepReport:
    start, started = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S")
    packs, stored = plan(spec, store)
    _prepare(spec, store, packs, ray_options)
    report = SweepReport(planned=len(spec.trials), already_stored=stored, packs=len(packs))
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    if removed := store.prune_checkpoints({p.id for p in packs}):
        say(
            f"{spec.name}: removed {len(removed)} checkpoint{'' if len(removed) == 1 else 's'} "
            f"that no planned pack reads (the spec changed since they were written)"
        )
    if not packs:
        say(f"{spec.name}: all {stored} trials already stored in {store.dir}; nothing to run")
        return report
    say(
        f"{spec.name}: {len(spec.trials)} trials planned, {stored} already stored; "
        f"running {sum(len(p.trials) for p in packs)} trials in {len(packs)} packs"
    )
    import ray

    root = store.location
    queue = deque(sorted(packs, key=pack_cost, reverse=True))  # longest first: better packing
    slots = worker_slots(spec.resources, ray.cluster_resources(), len(packs))
    worker = ray.remote(PackWorker).options(
        num_cpus=spec.resources.cpus,
        num_gpus=spec.resources.gpus,
        memory=int(spec.resources.memory_gb * 2**30),
        max_restarts=-1,
        max_task_retries=spec.resources.retries,
        **({"runtime_env": {"env_vars": env}} if (env := worker_env(spec.resources)) else {}),
    )
    workers = [worker.remote(compile_cache, spec.resources.gpus == 0) for _ in range(slots)]
    pending: dict = {}

    def feed(w) -> None:
        """Give worker ``w`` the next pack, or let it go (its resources free up for a
        worker that Ray restarts elsewhere) when none is left."""
        if queue:
            pack = queue.popleft()
            pending[w.run.remote(spec.name, root, pack, spec.resources)] = (pack, w)
        else:
            ray.kill(w)

    for w in workers:
        feed(w)
    progress = Progress(total=sum(len(p.trials) for p in packs), quiet=quiet, label=spec.name)
    try:
        with progress:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                pack, w = pending.pop(done[0])
                try:
                    result = ray.get(done[0])
                    report.trials_run += len(pack.trials)
                    report.placements.append(result)
                    if result.get("oom_splits"):
                        report.oom_splits += result["oom_splits"]
                        progress.log(
                            f"pack {pack.id} ran out of memory; split {result['oom_splits']} times"
                        )
                except Exception as e:
                    reason = _one_line(e)
                    store.write_failure(pack.id, list(pack.trial_ids), reason)
                    report.failed_packs.append(pack.id)
                    progress.log(f"pack {pack.id} failed: {reason}")
                progress.advance(len(pack.trials), failed=pack.id in report.failed_packs)
                feed(w)
    finally:
        for w in workers:
            ray.kill(w)
    report.wall_time_s = time.perf_counter() - start
    store.write_run(
        {
            "started": started,
            "wall_time_s": report.wall_time_s,
            "trials_run": report.trials_run,
            "packs": report.packs,
            "failed_packs": len(report.failed_packs),
            "oom_splits": report.oom_splits,
        }
    )
    return report


def _one_line(error: BaseException) -> str:
    cause = getattr(error, "cause", None) or error
    text = f"{type(cause).__name__}: {cause}".strip().splitlines()
    return text[0] if text else type(cause).__name__
