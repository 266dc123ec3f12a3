"""Running a sweep on Ray (the driver): plan the missing trials into packs, start or join
Ray, keep pack workers fed (warm ones kept between sweeps by ``dd.run.pool``), show progress,
and record the run.

The workers (``dd.run.worker``) write the packs' files themselves, so results never travel
through the driver; the driver keeps only small summaries and the progress display. Which
pack runs next and what became of each is ``dd.run.schedule``'s, testable without Ray.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from dd.datasets.base import Locations
from dd.plan.packs import Pack, pack_cost
from dd.plan.runners import runner_of
from dd.plan.states import store_plan
from dd.plan.sweep import Resources, Spec
from dd.run import cluster
from dd.run.eta import Tracker
from dd.run.policy import (
    Dispatch,
    Keep,
    Kill,
    RecordFailure,
    RecordFinished,
    Requeue,
    StartWorker,
    Submit,
)
from dd.run.pool import POOL, WorkerKind
from dd.run.progress import Progress
from dd.run.schedule import Schedule, SweepReport, Watchdog, plan, worker_slots
from dd.spec.errors import Cancelled, SpecError, one_line
from dd.spec.ids import trial_id
from dd.spec.settings import Settings
from dd.store.compact import COMPACT_AFTER, COMPACT_DURING, compact
from dd.store.sweep import SweepStore

LOOK_S = 2.0  # how often the driver reads its packs' progress and rewrites its own record


def tracker_of(packs) -> Tracker:
    """The ETA's view of ``packs`` (``dd.run.eta``): epochs, cost, program per pack."""
    return Tracker(
        [
            (
                p.id,
                runner_of(p.trials[0]).epochs(p.trials[0]),
                pack_cost(p),
                trial_id(p.key),
            )
            for p in packs
        ]
    )


def check_data_files(packs: list[Pack], locations: Locations) -> None:
    """Read every file-backed dataset once before scheduling (through ``locations``, as the
    workers will), so a missing or malformed file is one clear error (exit 2) rather than a
    failure in every pack."""
    from dd.datasets.registry import kind_of
    from dd.engine.data import load_dataset

    seen = set()
    for pack in packs:
        data = max((t.data for t in pack.trials), key=lambda d: d.n_train)
        if kind_of(data).checks_files and data not in seen:
            seen.add(data)
            load_dataset(data, locations)


def _check_local_cpus(local_cpus: int, address: str | None, resources: Resources) -> None:
    """A CPU cap applies to a local instance only, and must fit one pack (else Ray waits
    forever)."""
    if address:
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
    settings: Settings | None = None,
    quiet: bool = False,
    debug: bool = False,
    stop: threading.Event | None = None,
    early: cluster.EarlyStart | None = None,
) -> SweepReport:
    """Run every planned trial of ``spec`` not yet stored under ``results_root``.

    ``settings`` (default: dd's defaults, no environment read) give the Ray address and its
    connect timeout, the CPU cap of a local instance, the workers' compile cache and where
    the dataset files are (``data_dir``, ``cache_dir``: given to the workers). The
    sweep directory is locked for this driver while it runs (``SweepStore.driver_lock``).
    ``debug`` shows Ray's own messages (``dd.run.cluster.start_ray``). ``stop``, once set (by
    another thread: ``dd.handle.SweepHandle.cancel``), ends the run with ``Cancelled``: the
    workers go, finished packs stay. ``early``: a Ray start already under way for this run
    (``dd.run.cluster.start_ray_soon``), taken up before Ray is used.
    """
    settings = settings or Settings()
    if settings.cpus is not None:
        _check_local_cpus(settings.cpus, settings.address, spec.resources)
    store = SweepStore(results_root, spec.name)
    ray_options = cluster.ray_options(settings, quiet=quiet, debug=debug)
    with store.driver_lock():
        try:
            report = _run_locked(spec, store, ray_options, quiet, settings, stop, early)
        finally:  # however the run ends, none of its packs runs now: their partial rows are stale
            store.clear_running_records()
        compact(store, COMPACT_AFTER, None if quiet else _say)  # fewer files for the readers
        return report


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _locations(settings: Settings) -> Locations:
    """Where the dataset files are, from the driver's settings, for the driver and its workers."""
    return Locations(data_dir=settings.data_dir, cache_dir=settings.cache_dir)


def _prepare(
    spec: Spec,
    store: SweepStore,
    packs: list[Pack],
    ray_options: dict,
    locations: Locations,
    early: cluster.EarlyStart | None = None,
) -> None:
    """Every check that can refuse the run, then the spec and its plan saved: a refused run
    writes nothing. With packs to run: their data files read, Ray joined, one pack's resources
    found on a node."""
    if packs:
        import ray

        check_data_files(packs, locations)
        cluster.start_ray(**ray_options, early=early)
        cluster.check_fits(spec.resources, ray.nodes())
    store.write_spec(spec.mapping)
    store_plan(store, spec, packs)  # what read commands read (dd.store.plan)


def _run_locked(
    spec: Spec,
    store: SweepStore,
    ray_options: dict,
    quiet: bool,
    settings: Settings,
    stop: threading.Event | None = None,
    early: cluster.EarlyStart | None = None,
) -> SweepReport:
    start, started = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S")
    packs, stored = plan(spec, store)
    _prepare(spec, store, packs, ray_options, _locations(settings), early)
    report = SweepReport(planned=len(spec.trials), already_stored=stored, packs=len(packs))
    if packs and not ray_options["debug"]:  # Ray's own messages: to the run's log, not the terminal
        log = store.ray_log_path()
        cluster.route_ray_output(log)
        report.ray_log = str(log)
    store.drop_stale_partials()  # their trials are stored or planned again
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
    _run_packs(spec, store, Schedule(packs, report), quiet, settings, stop, started)
    report.wall_time_s = time.perf_counter() - start
    store.write_run(report.run_record(started))
    return report


def _run_packs(
    spec: Spec,
    store: SweepStore,
    schedule: Schedule,
    quiet: bool,
    settings: Settings,
    stop: threading.Event | None,
    started: str = "",
) -> None:
    """Take pack workers (warm ones from ``dd.run.pool.POOL`` first) and carry out what the
    run's policy (``dd.run.policy.Dispatch``) answers to each pack that comes back and each
    look at the running ones: this is the Ray side only. Every ``LOOK_S`` seconds the packs'
    progress is read and the sweep's ETA (``dd.run.eta``) shown and written with the driver's
    record (``SweepStore.write_driver``). When the run ends well, the workers that had no
    failure go back to the pool for this process's next sweep; otherwise they are killed."""
    import ray

    resources = spec.resources
    kind = WorkerKind.of(resources, settings)
    in_flight = kind.packs_in_flight
    slots = worker_slots(resources, ray.cluster_resources(), -(-len(schedule.queue) // in_flight))
    dispatch = Dispatch(
        schedule,
        POOL.take(kind, slots),
        in_flight=in_flight,
        watchdog=Watchdog(resources.stall_minutes),
        cluster=bool(settings.address),
        watched=lambda pack: runner_of(pack.trials[0]).watched,
        retries=resources.retries,
    )
    refs: dict = {}  # the Ray reference of each running pack -> the pack
    tracker = tracker_of(schedule.queue)
    total_packs, begun, looked = len(schedule.queue), time.time(), -float("inf")
    kept: list = []
    progress = Progress(total=schedule.total_trials, quiet=quiet, label=spec.name)

    def carry_out(actions) -> None:
        for action in actions:
            match action:
                case Submit(pack, worker):
                    sent = time.time()
                    ref = worker.run.remote(spec.name, store.location, pack, resources, sent)
                    refs[ref] = pack
                    tracker.seen(pack.id, None, sent=sent)
                case Kill(worker):
                    ray.kill(worker)
                case StartWorker():
                    carry_out(dispatch.worker_started(kind.start()))
                case Requeue(pack, line):
                    _forget(refs, pack)
                    store.clear_running(pack.id)  # its worker was stopped or died: stale
                    tracker.requeued(pack.id)
                    if line:
                        progress.log(line)
                case RecordFailure(pack, reason, line):
                    _forget(refs, pack)
                    store.clear_running(pack.id)  # a lost node's worker could not: stale rows
                    store.write_failure(pack.id, list(pack.trial_ids), reason)
                    tracker.finished(pack.id, None, time.time())
                    progress.log(line)
                    progress.advance(len(pack.trials), failed=True)
                case RecordFinished(pack, result, line):
                    tracker.finished(pack.id, result, time.time())
                    if line:
                        progress.log(line)
                    progress.advance(len(pack.trials), failed=False)
                case Keep(worker):
                    kept.append(worker)

    def look() -> None:
        """Read the running packs' progress, show and record the sweep's ETA, and fail the
        stalled ones (at most every ``LOOK_S`` seconds)."""
        nonlocal looked
        if time.monotonic() - looked < LOOK_S:
            return
        looked = time.monotonic()
        if len(store.pack_files()) >= COMPACT_DURING:  # a long sweep: merge as it goes
            compact(store, COMPACT_DURING, None if quiet else progress.log)
        records = {pack_id: store.running_record(pack_id) for pack_id in dispatch.running}
        for pack_id, record in records.items():
            tracker.seen(pack_id, record)
        carry_out(dispatch.look(records))
        now, slots = time.time(), dispatch.live_workers() * in_flight
        eta = tracker.eta(now, slots, [p.id for p in schedule.queue])
        progress.set_eta(eta)
        failed = len(schedule.report.failed_packs)
        running = len(dispatch.running)
        store.write_driver(
            {
                "started": started,
                "started_at": begun,
                "updated_at": now,
                "eta_s": eta,
                "packs": total_packs,
                "packs_done": total_packs - running - len(schedule.queue) - failed,
                "packs_failed": failed,
                "packs_running": running,
                "slots": slots,
                "trials": schedule.total_trials,
                "trials_done": progress.done,
            }
        )

    carry_out(dispatch.begin())
    poll = min(LOOK_S, 15 * resources.stall_minutes) if resources.stall_minutes else LOOK_S
    if stop is not None:
        poll = min(poll, 0.5)
    ended_well = False
    try:
        with progress:
            while refs:
                if stop is not None and stop.is_set():
                    raise Cancelled(f"{spec.name}: cancelled; finished packs are kept")
                done, _ = ray.wait(list(refs), num_returns=1, timeout=poll)
                if done:
                    carry_out(_came_back(dispatch, refs.pop(done[0]), done[0]))
                look()
        ended_well = True
    finally:
        store.clear_driver()
        carry_out(dispatch.end(ended_well))
        POOL.give_back(kind, kept)


def _forget(refs: dict, pack: Pack) -> None:
    """Drop ``pack``'s Ray reference: what it returns no longer counts."""
    for ref in [r for r, p in refs.items() if p.id == pack.id]:
        del refs[ref]


def _came_back(dispatch: Dispatch, pack: Pack, ref) -> list:
    """The event of a pack whose reference is ready: its worker's summary, its worker's death
    (``worker_death``), or the error the pack raised."""
    import ray

    try:
        result = ray.get(ref)
    except Exception as e:
        death = worker_death(e)
        if death is None:
            return dispatch.raised(pack, one_line(e))
        return dispatch.lost(pack, death, charged=death == WORKER_DIED)
    return dispatch.finished(pack, result)


NODE_LOST = "its node was lost"
WORKER_DIED = "its worker process died"


def worker_death(error: BaseException) -> str | None:
    """How a pack's worker died, from the error ``ray.get`` raised: ``NODE_LOST`` (its node
    died, was preempted or cannot be reached: no fault of the pack), ``WORKER_DIED`` (its
    process died on a live node: killed, or the pack ran the host out of memory), or None
    when the pack raised an error of its own (a worker whose start raised included: every
    pack would meet it again)."""
    from ray import exceptions as rx

    if isinstance(error, rx.RayActorError):
        if error.actor_init_failed:
            return None
        node = isinstance(error, rx.ActorUnavailableError) or error.preempted
        return NODE_LOST if node or "node has died" in str(error) else WORKER_DIED
    if isinstance(error, rx.NodeDiedError | rx.LocalRayletDiedError):
        return NODE_LOST
    if isinstance(error, rx.WorkerCrashedError):
        return WORKER_DIED
    return None
