"""What the driver does about each thing that happens to its packs and workers, apart from Ray.

``Dispatch`` takes events (the run begins, a pack finished, a pack raised, a fresh worker is up,
a pack's worker died, the driver looks at its running packs, the run ends) and answers with
actions, small frozen records the Ray side (``dd.run.execute``) carries out: submit a pack to a
worker, kill a worker, start a fresh one, requeue a pack, record a failure. Which packs run,
which worker runs them, when a pack has stalled (``dd.run.schedule.Watchdog``), which packs a
dead worker's death is charged to (``resources.retries``), which workers are spoiled and which
go back to the pool are all decided here, so a test drives every branch with stand-in workers
and a fake clock (``tests/run/test_policy.py``).

Workers are opaque hashable handles here (Ray actor handles in a run, strings in a test).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from dd.plan.packs import Pack
from dd.run.schedule import Schedule, Watchdog


@dataclass(frozen=True)
class Submit:
    """Send ``pack`` to ``worker``."""

    pack: Pack
    worker: Hashable


@dataclass(frozen=True)
class Kill:
    """Stop ``worker`` (its running packs go with it)."""

    worker: Hashable


@dataclass(frozen=True)
class StartWorker:
    """Start a fresh worker, then tell ``Dispatch.worker_started``."""


@dataclass(frozen=True)
class Requeue:
    """``pack`` was running on a killed or dead worker: forget its result (the schedule hands
    it out again), showing ``line`` if any."""

    pack: Pack
    line: str | None = None


@dataclass(frozen=True)
class RecordFailure:
    """``pack`` failed for ``reason``: clear its running rows, store the failure, show
    ``line`` and count its trials as failed."""

    pack: Pack
    reason: str
    line: str


@dataclass(frozen=True)
class RecordFinished:
    """``pack`` ran (``result``: its worker's summary): count it, showing ``line`` if any."""

    pack: Pack
    result: dict
    line: str | None


@dataclass(frozen=True)
class Keep:
    """The run ended well and ``worker`` had no failure: it goes back to the pool."""

    worker: Hashable


Action = Submit | Kill | StartWorker | Requeue | RecordFailure | RecordFinished | Keep


class Dispatch:
    """The policy of one run: keep each worker's ``in_flight`` slots fed from ``schedule``, fail
    stalled packs (``watchdog``; only packs ``watched(pack)`` says have evaluations to wait for)
    and let workers go. On a ``cluster`` a worker left with nothing to run goes at once: the
    fresh worker started for a pack whose node was lost may need its reservation (a local
    instance keeps it warm for the pool). A pack whose worker died runs again on a live
    worker; the death counts against its ``retries`` only when ``lost`` is told it may be the
    pack's doing (its process died on a live node), never for a lost node."""

    def __init__(
        self,
        schedule: Schedule,
        workers: list,
        *,
        in_flight: int,
        watchdog: Watchdog,
        cluster: bool = False,
        watched: Callable[[Pack], bool] = lambda pack: True,
        retries: int = 2,
    ):
        self.schedule, self.in_flight, self.watchdog = schedule, in_flight, watchdog
        self.cluster, self.watched, self.retries = cluster, watched, retries
        self.deaths: dict[str, int] = {}  # pack id -> deaths of its worker charged to it
        self.workers = list(workers)
        self.load = dict.fromkeys(self.workers, 0)  # packs each worker runs now
        self.running: dict[str, tuple[Pack, Any]] = {}  # pack id -> (pack, its worker)
        self.spoiled: set = set()  # workers that must not be reused (a failed or stalled pack)
        self.gone: set = set()  # workers let go before the run ends

    def begin(self) -> list[Action]:
        """The run begins: feed every worker."""
        return [a for worker in self.workers for a in self._feed(worker)]

    def finished(self, pack: Pack, result: dict) -> list[Action]:
        """``pack`` came back with its worker's summary: count it, feed its worker."""
        _, worker = self.running.pop(pack.id)
        self.load[worker] -= 1
        line = self.schedule.finished(pack, result)
        return [RecordFinished(pack, result, line), *self._feed(worker)]

    def raised(self, pack: Pack, reason: str) -> list[Action]:
        """``pack`` raised an error of its own: record the failure; its worker may go on with
        other packs but is not reused after."""
        _, worker = self.running.pop(pack.id)
        self.load[worker] -= 1
        self.spoiled.add(worker)
        line = self.schedule.failed(pack, reason)
        return [RecordFailure(pack, reason, line), *self._feed(worker)]

    def lost(self, pack: Pack, reason: str, *, charged: bool) -> list[Action]:
        """``pack``'s worker died (``reason``): it gets nothing more. Every pack it ran goes
        back to the queue, to a live worker's free slot or to a fresh worker started for them,
        and resumes from its checkpoint. ``charged`` (the worker's process died on a live node:
        the pack may have killed it, out of host memory say) counts the death against each of
        those packs' ``retries``, failing the ones past it; a lost node charges nothing."""
        _, worker = self.running[pack.id]
        actions: list[Action] = [Kill(worker)]  # an unreachable worker must not run on
        self.gone.add(worker)
        self.spoiled.add(worker)
        self.load[worker] = 0
        for pack_id, (on_it, on) in list(self.running.items()):
            if on != worker:
                continue
            del self.running[pack_id]
            deaths = self.deaths[pack_id] = self.deaths.get(pack_id, 0) + charged
            if deaths > self.retries:
                why = f"{reason} ({deaths} times; resources.retries {self.retries})"
                actions.append(RecordFailure(on_it, why, self.schedule.failed(on_it, why)))
                continue
            self.schedule.requeue(on_it)
            again = f" (retry {deaths} of {self.retries})" if deaths else ""
            actions.append(Requeue(on_it, f"pack {pack_id}: {reason}; it runs again{again}"))
        for live in self.workers:
            if live not in self.gone:
                actions.extend(self._feed(live))
        if self.schedule.queue:
            actions.append(StartWorker())
        return actions

    def look(self, records: Mapping[str, dict | None]) -> list[Action]:
        """The driver read the running packs' records (pack id -> record): fail each stalled
        one. Its worker is killed, the packs it ran beside it go back to the queue, and a fresh
        worker is started to take over."""
        actions: list[Action] = []
        for pack_id, (pack, worker) in list(self.running.items()):
            if pack_id not in self.running:  # requeued with an earlier stalled pack of its worker
                continue
            reason = self.watchdog.stalled(pack_id, records.get(pack_id))
            if reason is None:
                continue
            del self.running[pack_id]
            actions.append(Kill(worker))
            self.spoiled.add(worker)
            self.load[worker] = 0
            for other, (beside, on) in list(self.running.items()):
                if on == worker:
                    del self.running[other]
                    self.schedule.requeue(beside)
                    actions.append(Requeue(beside))
            actions.append(RecordFailure(pack, reason, self.schedule.failed(pack, reason)))
            actions.append(StartWorker())
        return actions

    def worker_started(self, worker) -> list[Action]:
        """A fresh worker (asked for by ``StartWorker``) is up: feed it."""
        self.workers.append(worker)
        self.load[worker] = 0
        return self._feed(worker)

    def end(self, ended_well: bool) -> list[Action]:
        """The run ends: the workers that had no failure go back to the pool if it ended well,
        every other one still held is killed."""
        actions: list[Action] = []
        for worker in self.workers:
            if worker in self.gone:
                continue
            if ended_well and worker not in self.spoiled:
                actions.append(Keep(worker))
            else:
                actions.append(Kill(worker))
        return actions

    def live_workers(self) -> int:
        """How many workers the run holds now."""
        return sum(1 for w in self.workers if w not in self.gone)

    def _feed(self, worker) -> list[Action]:
        actions: list[Action] = []
        while (
            self.load[worker] < self.in_flight and (pack := self.schedule.next_pack()) is not None
        ):
            self.running[pack.id] = (pack, worker)
            self.load[worker] += 1
            if self.watched(pack):  # a fit has no evaluation to wait for
                self.watchdog.started(pack.id)
            actions.append(Submit(pack, worker))
        if self.cluster and self.load[worker] == 0 and worker not in self.gone:
            self.gone.add(worker)
            actions.append(Kill(worker))
        return actions
