"""The sweep's ETA from measured step rates, apart from Ray and the store (plain numbers in,
seconds out), so a test drives it with recorded rates and a fake clock.

A pack's time is an overhead (worker start, data, compiling) and then its steps at a steady
rate. The rate is measured between the pack's first progress sample (taken after its first
step, so compiling is out of it) and its latest one. A pack still to run takes the rate of
the packs of its program (``group``) measured so far, or else the mean measured work rate
scaled by its cost (``dd.plan.packs.pack_cost``: replicas x rows x epochs x parameters), and
the mean measured overhead. The remaining packs are then laid, in the order they will be
handed out, onto the ``slots`` that run packs at once; the ETA is when the last slot ends.
Steps here are whatever unit a pack counts (epochs for a trained pack).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

Sample = tuple[float, int]  # (clock, steps done by then)


@dataclass(frozen=True)
class PackProgress:
    """What is known of one pack at a clock value: queued (``started`` None), running, or
    ``finished`` (a clock value)."""

    steps: int  # planned steps
    cost: float  # relative cost of the whole pack (``dd.plan.packs.pack_cost``)
    group: str = ""  # packs of one program share their step rate
    started: float | None = None
    first: Sample | None = None  # its first progress sample (after compiling)
    last: Sample | None = None  # its latest one
    finished: float | None = None


def rate(p: PackProgress) -> float | None:
    """Steps per second between the first progress sample and the latest (or the end), None
    until two points are apart."""
    if p.first is None:
        if p.finished is not None and p.started is not None and p.finished > p.started:
            return p.steps / (p.finished - p.started)  # no sample: a one-shot pack (a fit)
        return None
    end = (p.finished, p.steps) if p.finished is not None else p.last
    if end is None or end[0] <= p.first[0] or end[1] <= p.first[1]:
        return None
    return (end[1] - p.first[1]) / (end[0] - p.first[0])


def overhead(p: PackProgress, r: float) -> float:
    """Seconds from a measured pack's start to its first step at rate ``r``."""
    if p.first is None or p.started is None:
        return 0.0
    return max(p.first[0] - p.started - p.first[1] / r, 0.0)


def sweep_eta(packs: Sequence[PackProgress], now: float, slots: int) -> float | None:
    """Seconds until the last of ``packs`` ends, None before any step rate is measured.
    Queued packs are taken in the order given (the order they are handed out)."""
    measured = [(p, r) for p in packs if (r := rate(p))]
    if not measured:
        return None
    by_group: dict[str, list[float]] = {}
    for p, r in measured:
        by_group.setdefault(p.group, []).append(r)
    work_rate = sum(r * p.cost / p.steps for p, r in measured) / len(measured)
    start_cost = sum(overhead(p, r) for p, r in measured) / len(measured)

    def estimated_rate(p: PackProgress) -> float:
        if p.group in by_group:
            return sum(by_group[p.group]) / len(by_group[p.group])
        return work_rate * p.steps / p.cost if p.cost > 0 else work_rate

    ends, queued = [], []
    for p in packs:
        if p.finished is not None:
            continue
        if p.started is None:
            queued.append(start_cost + p.steps / estimated_rate(p))
        elif (r := rate(p)) and p.last is not None:
            ends.append(max((p.steps - p.last[1]) / r - (now - p.last[0]), 0.0))
        else:  # running, not measured yet: its estimated length less the time it has run
            whole = start_cost + p.steps / estimated_rate(p)
            ends.append(max(whole - (now - p.started), 0.0))
    free = ends + [0.0] * max(max(slots, 1) - len(ends), 0)
    heapq.heapify(free)
    for seconds in queued:
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return max(free)


def pack_rate(record: dict) -> float | None:
    """A running record's steady rate (epochs per second) from its progress samples
    (``dd.run.worker.LiveRows``), None before two samples."""
    return rate(observed(record, steps=record.get("epochs") or 0, cost=1.0))


def observed(record: dict, steps: int, cost: float, group: str = "") -> PackProgress:
    """A pack's running record (``started_at``, ``first_at``/``first_reached``,
    ``updated_at``/``reached``: wall-clock seconds and epochs) as a ``PackProgress``."""
    first = last = None
    if record.get("first_at") is not None:
        first = (record["first_at"], record["first_reached"])
    if record.get("updated_at") is not None and record.get("reached") is not None:
        last = (record["updated_at"], record["reached"])
    return PackProgress(
        steps=steps,
        cost=cost,
        group=group,
        started=record.get("started_at"),
        first=first,
        last=last,
    )


class Tracker:
    """The driver's view of its packs for ``sweep_eta``: each pack's planned steps, cost and
    group (in hand-out order), what its running record and its result said, and when it
    ended. Clock values are wall-clock seconds (``time.time()``), the workers' and the
    driver's alike."""

    def __init__(self, packs: Sequence[tuple[str, int, float, str]]):
        self.plan = {pid: (steps, cost, group) for pid, steps, cost, group in packs}
        self.records: dict[str, dict] = {}
        self.ended: dict[str, float] = {}

    def seen(self, pack_id: str, record: dict | None, sent: float | None = None) -> None:
        """A running pack's record (None before its worker wrote one: then ``sent``, the
        clock when the driver handed it out, stands for its start)."""
        if record is None:
            record = {"started_at": sent} if sent is not None else {}
        self.records[pack_id] = {**self.records.get(pack_id, {}), **record}

    def finished(self, pack_id: str, result: dict | None, clock: float) -> None:
        """A pack came back (``result``: its worker's, with ``started_at``, ``ended_at`` and
        its first progress sample) or failed (None: it runs no more and measured nothing)."""
        if result is None:
            self.records.pop(pack_id, None)
            return
        self.records[pack_id] = {**self.records.get(pack_id, {}), **(result or {})}
        self.ended[pack_id] = (result or {}).get("ended_at", clock)

    def requeued(self, pack_id: str) -> None:
        self.records.pop(pack_id, None)
        self.ended.pop(pack_id, None)

    def progress(self, queued: Sequence[str]) -> list[PackProgress]:
        """Every pack's ``PackProgress``: ended, running, then ``queued`` in its order."""
        out = []
        for pid, record in self.records.items():
            steps, cost, group = self.plan[pid]
            p = observed(record, steps=steps, cost=cost, group=group)
            if pid in self.ended:
                p = PackProgress(steps, cost, group, p.started, p.first, p.last, self.ended[pid])
            out.append(p)
        for pid in queued:
            if pid not in self.records:
                steps, cost, group = self.plan[pid]
                out.append(PackProgress(steps=steps, cost=cost, group=group))
        return out

    def eta(self, now: float, slots: int, queued: Sequence[str]) -> float | None:
        return sweep_eta(self.progress(queued), now, slots)
