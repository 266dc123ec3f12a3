"""The driver's scheduling, apart from Ray: which packs run, how many workers the cluster
holds, which pack a free worker takes next, and the account of what became of each pack.

Plain objects, so a test drives a whole schedule without Ray (``tests/run/test_schedule.py``);
the driver (``dd.run.execute``) only moves packs between these and its Ray workers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dd.plan.adopt import adopt_legacy_ids
from dd.plan.packs import Pack, make_packs, pack_cost
from dd.plan.sweep import Resources, Spec
from dd.spec.expand import ids_of
from dd.store.sweep import SweepStore


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
    ray_log: str | None = None  # where Ray's own messages went (dd.run.cluster.route_ray_output)

    def run_record(self, started: str) -> dict:
        """The record of this run that the store keeps under ``runs/``."""
        return {
            "started": started,
            "wall_time_s": self.wall_time_s,
            "trials_run": self.trials_run,
            "packs": self.packs,
            "failed_packs": len(self.failed_packs),
            "oom_splits": self.oom_splits,
        }


def plan(spec: Spec, store: SweepStore) -> tuple[list[Pack], int]:
    """The packs still to run, and how many planned trials are already stored."""
    adopt_legacy_ids(store, spec)  # rows stored under a location-hashing id count as stored
    stored = store.stored_trial_ids()
    ids = ids_of(spec.trials)
    missing = [i for i, tid in enumerate(ids) if tid not in stored]
    # nothing stored: the planned trials themselves, never built all at once
    todo = spec.trials if len(missing) == len(ids) else [spec.trials[i] for i in missing]
    return make_packs(todo, spec.resources, planned=spec.trials), len(ids) - len(missing)


def worker_slots(resources: Resources, cluster: dict[str, float], n_packs: int) -> int:
    """How many pack workers the cluster holds at once (at least one, at most ``n_packs``:
    the packs to run divided by the packs each worker runs at once, rounded up)."""
    slots = n_packs
    if resources.cpus > 0:
        slots = min(slots, int(cluster.get("CPU", 0) // resources.cpus))
    if resources.gpus > 0:
        slots = min(slots, int(round(cluster.get("GPU", 0) / resources.gpus, 6)))
    return max(1, slots)


class Schedule:
    """The packs of one run: handed out longest first (better packing of the last ones), and
    each finished one counted into ``report``. ``next_pack`` gives None once every pack has
    been handed out: the worker asking can then be let go."""

    def __init__(self, packs: list[Pack], report: SweepReport):
        self.queue = deque(sorted(packs, key=pack_cost, reverse=True))
        self.report = report
        self.total_trials = sum(len(p.trials) for p in packs)

    def next_pack(self) -> Pack | None:
        return self.queue.popleft() if self.queue else None

    def requeue(self, pack: Pack) -> None:
        """``pack`` was handed out but did not run to its end (it ran beside a stalled pack
        whose worker was stopped, or its worker died): it is handed out next."""
        self.queue.appendleft(pack)

    def finished(self, pack: Pack, result: dict) -> str | None:
        """``pack`` ran (``result``: its worker's summary); a line to show, if any."""
        self.report.trials_run += len(pack.trials)
        self.report.placements.append(result)
        if splits := result.get("oom_splits"):
            self.report.oom_splits += splits
            return f"pack {pack.id} ran out of memory; split {splits} times"
        return None

    def failed(self, pack: Pack, reason: str) -> str:
        """``pack`` failed for ``reason`` (its retries spent); the line to show."""
        self.report.failed_packs.append(pack.id)
        return f"pack {pack.id} failed: {reason}"


class Watchdog:
    """Tells a stalled pack: one whose running record (``dd.run.worker.LiveRows``) shows no new
    epoch reached for ``minutes`` since its start or its last progress, and for ``factor``
    times the seconds its measured rate predicts to its next evaluation point. Times are the
    driver's own clock (a worker's may differ), read when the driver looks."""

    FACTOR = 3.0

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic):
        self.limit_s, self.clock = 60 * minutes, clock
        self.seen: dict[str, tuple[object, float]] = {}

    def started(self, pack_id: str) -> None:
        self.seen[pack_id] = (None, self.clock())

    def stalled(self, pack_id: str, record: dict | None) -> str | None:
        """The reason ``pack_id`` is stalled, None while it progresses (or with no limit)."""
        if not self.limit_s or pack_id not in self.seen:
            return None
        record = record or {}
        epoch = record.get("reached", record.get("epoch"))  # trained epochs move in between
        last, since = self.seen[pack_id]
        now = self.clock()
        if epoch != last:
            self.seen[pack_id] = (epoch, now)
            return None
        limit = self.limit_s
        rate, following = record.get("epochs_per_s"), record.get("next_epoch")
        if rate and following is not None and epoch is not None:
            limit = max(limit, self.FACTOR * (following - epoch) / rate)
        if now - since < limit:
            return None
        after = "since it started" if epoch is None else f"after epoch {epoch}"
        return (
            f"stalled: no epoch reached for {now - since:.0f} s {after} "
            f"(resources.stall_minutes {self.limit_s / 60:g})"
        )
