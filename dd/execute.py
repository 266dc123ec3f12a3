"""Running a sweep on Ray: plan the missing trials into packs, run each pack as a Ray task.

The worker that runs a pack also writes its Parquet file, so results never travel through
the driver; the driver keeps only small summaries and the progress display. Local Ray starts
by itself; ``address`` (or $RAY_ADDRESS) joins an existing cluster.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dd.errors import SpecError
from dd.packs import Pack, make_packs, pack_cost, pack_key
from dd.progress import Progress
from dd.spec import Resources, Spec, trial_id
from dd.store import SweepStore


DEFAULT_COMPILE_CACHE = "~/.cache/dd/jax"


@dataclass
class SweepReport:
    """What a ``run_sweep`` call did."""

    planned: int
    already_stored: int
    packs: int = 0
    trials_run: int = 0
    failed_packs: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0


def compile_cache_dir(setting: str | None = None) -> str | None:
    """Where workers keep JAX's persistent compilation cache: ``setting``, else
    $DD_COMPILE_CACHE, else ~/.cache/dd/jax (expanded on each worker); "off" for none."""
    value = setting or os.environ.get("DD_COMPILE_CACHE") or DEFAULT_COMPILE_CACHE
    return None if value == "off" else value


def run_pack(sweep: str, results_root: str, pack: Pack, resources: Resources,
             compile_cache: str | None = None) -> dict:
    """Fit or train every trial of ``pack`` and write its Parquet file (runs on a worker).

    A training pack checkpoints to ``<sweep>/checkpoints/`` when the spec asks for it and
    resumes from there after a crash; the checkpoint goes once the pack's file is written.
    With ``compile_cache`` (a folder, shared by the workers when it is on shared storage)
    a program compiled once, by any worker, is loaded rather than compiled again.
    """
    if compile_cache:
        import jax

        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(compile_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    store = SweepStore(results_root, sweep)
    with store.running(pack.id):
        return _run_pack(store, pack, resources)


def _run_pack(store: SweepStore, pack: Pack, resources: Resources) -> dict:
    import jax

    from dd.schema import pack_table

    trials, padded = list(pack.trials), pack.padded_trials()
    checkpoint = (store.dir / "checkpoints" / f"pack-{pack.id}.msgpack"
                  if resources.checkpoint_every else None)
    start = time.perf_counter()
    if trials[0].model.CLOSED_FORM:
        from dd.closed_form import fit_pack

        rows = [[metrics] for metrics in fit_pack(padded, pack.n_rows)]
    else:
        from dd.train import train_pack

        param_files = ([store.dir / "params" / f"{tid}.msgpack" for tid in pack.trial_ids]
                       if trials[0].train.save_params else None)
        rows = train_pack(padded, pack_key(trials[0]), pack.n_rows, checkpoint=checkpoint,
                          checkpoint_every=resources.checkpoint_every, param_files=param_files)
    rows = rows[: len(trials)]
    wall = time.perf_counter() - start
    table = pack_table(sweep=store.name, pack_id=pack.id, trial_ids=list(pack.trial_ids),
                       trials=trials, rows=rows, wall_time_s=wall, jax_version=jax.__version__)
    store.write_pack(pack.id, table)
    if checkpoint is not None and not resources.keep_checkpoints:
        checkpoint.unlink(missing_ok=True)
    return {"pack_id": pack.id, "trials": len(pack.trials), "wall_time_s": wall}


def plan(spec: Spec, store: SweepStore) -> tuple[list[Pack], int]:
    """The packs still to run, and how many planned trials are already stored."""
    stored = store.stored_trial_ids()
    missing = [t for t in spec.trials if trial_id(t) not in stored]
    return (make_packs(missing, spec.resources, planned=list(spec.trials)),
            len(spec.trials) - len(missing))


def check_data_files(packs: list[Pack]) -> None:
    """Read every file-backed dataset once before scheduling, so a missing or malformed file
    is one clear error (exit 2) rather than a failure in every pack."""
    from dd.config import ImageData
    from dd.data import load_dataset

    seen = set()
    for pack in packs:
        data = max((t.data for t in pack.trials), key=lambda d: d.n_train)
        if isinstance(data, ImageData) and data not in seen:
            seen.add(data)
            load_dataset(data)


def _init_ray(address: str | None, quiet: bool, local_cpus: int | None = None) -> None:
    """Join ``address`` (or $RAY_ADDRESS); without one, start a fresh local instance.

    ``address="local"`` matters: a bare ``ray.init()`` attaches to any Ray instance already
    running on the machine (another sweep's, say) and would queue behind its work.
    ``local_cpus`` caps a local instance (a laptop kept usable); a cluster sets its own.
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    ray.init(address=address, num_cpus=local_cpus if address == "local" else None,
             include_dashboard=False, log_to_driver=not quiet, configure_logging=True,
             logging_level="WARNING")


def _check_local_cpus(local_cpus: int, address: str | None, resources: Resources) -> None:
    """A CPU cap applies to a local instance only, and must fit one pack (else Ray waits forever)."""
    if address or os.environ.get("RAY_ADDRESS"):
        raise SpecError("--cpus", "only a local Ray instance takes a CPU count; a cluster "
                        "sets its own (drop --cpus or --address/$RAY_ADDRESS)")
    if local_cpus < resources.cpus:
        raise SpecError("--cpus", f"must be at least resources.cpus ({resources.cpus:g}) so "
                        f"that one pack fits, got {local_cpus}")


def run_sweep(spec: Spec, results_root: str | Path, *, address: str | None = None,
              quiet: bool = False, local_cpus: int | None = None,
              compile_cache: str | None = None) -> SweepReport:
    """Run every planned trial of ``spec`` not yet stored under ``results_root``.

    The sweep directory is locked for this driver while it runs (``SweepStore.driver_lock``).
    ``compile_cache``: see ``compile_cache_dir``.
    """
    if local_cpus is not None:
        _check_local_cpus(local_cpus, address, spec.resources)
    store = SweepStore(results_root, spec.name)
    with store.driver_lock():
        return _run_locked(spec, store, address, quiet, local_cpus,
                           compile_cache_dir(compile_cache))


def worker_env(resources: Resources) -> dict[str, str]:
    """Environment for pack workers: a pack given a fraction of a GPU gets that fraction of
    its memory (less a margin for XLA's own use), allocated as needed, so that the packs
    sharing one GPU fit; whole GPUs keep XLA's defaults."""
    if not 0 < resources.gpus < 1:
        return {}
    return {"XLA_PYTHON_CLIENT_PREALLOCATE": "false",
            "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{0.9 * resources.gpus:.3f}"}


def _run_locked(spec: Spec, store: SweepStore, address: str | None, quiet: bool,
                local_cpus: int | None, compile_cache: str | None) -> SweepReport:
    store.write_spec(spec.mapping)
    packs, stored = plan(spec, store)
    report = SweepReport(planned=len(spec.trials), already_stored=stored, packs=len(packs))
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    if not packs:
        say(f"{spec.name}: all {stored} trials already stored in {store.dir}; nothing to run")
        return report
    check_data_files(packs)
    say(f"{spec.name}: {len(spec.trials)} trials planned, {stored} already stored; "
        f"running {sum(len(p.trials) for p in packs)} trials in {len(packs)} packs")
    start, started = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S")
    _init_ray(address, quiet, local_cpus)
    import ray

    remote = ray.remote(run_pack).options(
        num_cpus=spec.resources.cpus, num_gpus=spec.resources.gpus,
        memory=int(spec.resources.memory_gb * 2**30), max_retries=spec.resources.retries,
        retry_exceptions=False,
        **({"runtime_env": {"env_vars": env}} if (env := worker_env(spec.resources)) else {}))
    root = store.location
    packs = sorted(packs, key=pack_cost, reverse=True)  # longest first: better packing
    pending = {remote.remote(spec.name, root, pack, spec.resources, compile_cache): pack
               for pack in packs}
    progress = Progress(total=sum(len(p.trials) for p in packs), quiet=quiet,
                        label=spec.name)
    with progress:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            pack = pending.pop(ref)
            try:
                ray.get(ref)
                report.trials_run += len(pack.trials)
            except Exception as e:  # noqa: BLE001 -- any pack error is recorded, the sweep goes on
                reason = _one_line(e)
                store.write_failure(pack.id, list(pack.trial_ids), reason)
                report.failed_packs.append(pack.id)
                progress.log(f"pack {pack.id} failed: {reason}")
            progress.advance(len(pack.trials))
    report.wall_time_s = time.perf_counter() - start
    store.write_run({"started": started, "wall_time_s": report.wall_time_s,
                     "trials_run": report.trials_run, "packs": report.packs,
                     "failed_packs": len(report.failed_packs)})
    return report


def _one_line(error: BaseException) -> str:
    cause = getattr(error, "cause", None) or error
    text = f"{type(cause).__name__}: {cause}".strip().splitlines()
    return text[0] if text else type(cause).__name__
