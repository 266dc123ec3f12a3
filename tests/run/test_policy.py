"""The run's policy without Ray (``dd.run.policy.Dispatch``): every event it takes and the
actions it answers with, driven by stand-in workers (strings), stand-in packs and a fake
clock for the stall watchdog."""

from __future__ import annotations

from dataclasses import dataclass

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
from dd.run.schedule import Schedule, SweepReport, Watchdog


@dataclass(frozen=True)
class FakePack:
    """What the policy and the schedule read of a pack: its id and its trials."""

    id: str
    trials: tuple = ("t0", "t1")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _dispatch(n_packs=4, workers=("w0",), *, in_flight=1, stall_minutes=1.0, **options):
    """A policy over ``n_packs`` packs p0, p1, ... (handed out in that order), a fake clock."""
    report = SweepReport(planned=2 * n_packs, already_stored=0, packs=n_packs)
    schedule = Schedule([], report)
    schedule.queue.extend(FakePack(f"p{i}") for i in range(n_packs))
    clock = Clock()
    watchdog = Watchdog(stall_minutes, clock=clock)
    dispatch = Dispatch(schedule, list(workers), in_flight=in_flight, watchdog=watchdog, **options)
    return dispatch, schedule, clock


def _ids(actions):
    """The actions with packs named by id, for short comparisons."""
    out = []
    for a in actions:
        if isinstance(a, Submit):
            out.append(("submit", a.pack.id, a.worker))
        elif isinstance(a, Requeue):
            out.append(("requeue", a.pack.id))
        elif isinstance(a, RecordFailure):
            out.append(("failed", a.pack.id))
        elif isinstance(a, RecordFinished):
            out.append(("finished", a.pack.id))
        else:
            out.append(a)
    return out


def test_the_run_begins_by_filling_every_workers_slots_in_the_schedules_order():
    dispatch, schedule, _ = _dispatch(5, ("a", "b"), in_flight=2)
    assert _ids(dispatch.begin()) == [
        ("submit", "p0", "a"),
        ("submit", "p1", "a"),
        ("submit", "p2", "b"),
        ("submit", "p3", "b"),
    ]
    assert [p.id for p in schedule.queue] == ["p4"]
    assert set(dispatch.running) == {"p0", "p1", "p2", "p3"}


def test_a_finished_pack_is_counted_and_its_worker_takes_the_next_one():
    dispatch, schedule, _ = _dispatch(3, ("a", "b"))
    dispatch.begin()
    actions = dispatch.finished(FakePack("p1"), {"node": "n"})
    assert actions == [
        RecordFinished(FakePack("p1"), {"node": "n"}, None),
        Submit(FakePack("p2"), "b"),
    ]
    assert schedule.report.trials_run == 2
    assert schedule.report.placements == [{"node": "n"}]


def test_a_finished_pack_that_split_for_memory_shows_a_line():
    dispatch, schedule, _ = _dispatch(1)
    dispatch.begin()
    [finished] = dispatch.finished(FakePack("p0"), {"oom_splits": 2})
    assert finished.line == "pack p0 ran out of memory; split 2 times"
    assert schedule.report.oom_splits == 2


def test_a_worker_with_nothing_left_to_run_stays_on_a_local_instance():
    dispatch, _, _ = _dispatch(1, ("a",))
    dispatch.begin()
    assert _ids(dispatch.finished(FakePack("p0"), {})) == [("finished", "p0")]
    assert dispatch.live_workers() == 1
    assert dispatch.end(ended_well=True) == [Keep("a")]


def test_a_worker_with_nothing_left_to_run_goes_at_once_on_a_cluster():
    dispatch, _, _ = _dispatch(1, ("a", "b"), cluster=True)
    assert _ids(dispatch.begin()) == [("submit", "p0", "a"), Kill("b")]
    assert _ids(dispatch.finished(FakePack("p0"), {})) == [("finished", "p0"), Kill("a")]
    assert dispatch.live_workers() == 0
    assert dispatch.end(ended_well=True) == [], "a worker let go is neither kept nor killed again"


def test_a_pack_that_raised_is_recorded_failed_and_its_worker_goes_on_but_is_not_reused():
    dispatch, schedule, _ = _dispatch(2, ("a",))
    dispatch.begin()
    actions = dispatch.raised(FakePack("p0"), "boom")
    assert actions == [
        RecordFailure(FakePack("p0"), "boom", "pack p0 failed: boom"),
        Submit(FakePack("p1"), "a"),
    ]
    assert schedule.report.failed_packs == ["p0"]
    dispatch.finished(FakePack("p1"), {})
    assert dispatch.end(ended_well=True) == [Kill("a")], "a spoiled worker is not kept"


def test_a_run_that_did_not_end_well_kills_every_worker():
    dispatch, _, _ = _dispatch(2, ("a", "b"))
    dispatch.begin()
    assert dispatch.end(ended_well=False) == [Kill("a"), Kill("b")]


def test_a_progressing_pack_is_not_stalled_however_long_the_run():
    dispatch, _, clock = _dispatch(1)
    dispatch.begin()
    for epoch in range(1, 5):
        clock.now += 50.0
        assert dispatch.look({"p0": {"epoch": epoch}}) == []
    clock.now += 59.0
    assert dispatch.look({"p0": {"epoch": 4}}) == [], "under the minute since its last epoch"


def test_a_stalled_pack_kills_its_worker_requeues_its_siblings_and_starts_a_fresh_worker():
    dispatch, schedule, clock = _dispatch(4, ("a", "b"), in_flight=2)
    dispatch.begin()  # a: p0, p1; b: p2, p3
    clock.now = 61.0
    records = {"p0": {"epoch": None}, "p2": {"epoch": 3}, "p3": {"epoch": 3}}
    actions = dispatch.look(records)  # p0 and p1 stalled (p1: no record); b's packs moved
    assert _ids(actions) == [Kill("a"), ("requeue", "p1"), ("failed", "p0"), StartWorker()]
    assert actions[2].line.startswith("pack p0 failed: stalled: no epoch reached for 61 s")
    assert [p.id for p in schedule.queue] == ["p1"], "the sibling is handed out next"
    assert set(dispatch.running) == {"p2", "p3"}
    assert schedule.report.failed_packs == ["p0"]
    assert _ids(dispatch.worker_started("c")) == [("submit", "p1", "c")]
    assert dispatch.live_workers() == 3, "the stopped worker counts until the run ends"
    for pack_id in ("p1", "p2", "p3"):
        dispatch.finished(FakePack(pack_id), {})
    assert dispatch.end(ended_well=True) == [Kill("a"), Keep("b"), Keep("c")]


def test_two_stalled_packs_of_one_worker_fail_the_first_and_requeue_the_second():
    dispatch, schedule, clock = _dispatch(2, ("a",), in_flight=2)
    dispatch.begin()
    clock.now = 120.0
    assert _ids(dispatch.look({})) == [
        Kill("a"),
        ("requeue", "p1"),
        ("failed", "p0"),
        StartWorker(),
    ]
    assert schedule.report.failed_packs == ["p0"]


def test_a_pack_its_policy_does_not_watch_never_stalls():
    dispatch, _, clock = _dispatch(1, watched=lambda pack: False)  # a closed-form fit
    dispatch.begin()
    clock.now = 10_000.0
    assert dispatch.look({}) == []


def test_no_stall_limit_means_no_pack_stalls():
    dispatch, _, clock = _dispatch(1, stall_minutes=0)
    dispatch.begin()
    clock.now = 10_000.0
    assert dispatch.look({}) == []


def test_a_slow_measured_rate_stretches_the_stall_limit():
    dispatch, _, clock = _dispatch(1)
    dispatch.begin()
    dispatch.look({"p0": {"epoch": 10, "epochs_per_s": 0.1, "next_epoch": 20}})  # 100 s away
    clock.now = 200.0
    record = {"epoch": 10, "epochs_per_s": 0.1, "next_epoch": 20}
    assert dispatch.look({"p0": record}) == [], "3 x 100 s allowed to the next point"
    clock.now = 301.0
    assert _ids(dispatch.look({"p0": record}))[0] == Kill("w0")


def test_a_lost_node_requeues_its_workers_packs_uncharged_and_starts_a_fresh_worker():
    dispatch, schedule, _ = _dispatch(5, ("a", "b"), in_flight=2, retries=0)
    dispatch.begin()  # a: p0, p1; b: p2, p3; p4 queued
    actions = dispatch.lost(FakePack("p0"), "its node was lost", charged=False)
    assert _ids(actions) == [Kill("a"), ("requeue", "p0"), ("requeue", "p1"), StartWorker()]
    assert actions[1].line == "pack p0: its node was lost; it runs again"
    assert [p.id for p in schedule.queue] == ["p1", "p0", "p4"], "requeued packs go first"
    assert schedule.report.failed_packs == [], "a lost node is no failure, even with no retries"
    assert set(dispatch.running) == {"p2", "p3"}
    assert dispatch.live_workers() == 1, "the dead worker no longer counts"
    assert _ids(dispatch.worker_started("c")) == [("submit", "p1", "c"), ("submit", "p0", "c")]
    for pack_id in ("p0", "p1", "p2", "p3"):
        dispatch.finished(FakePack(pack_id), {})
    assert dispatch.end(ended_well=True) == [Keep("b"), Keep("c")], "the dead one is not touched"


def test_a_pack_lost_with_its_node_again_and_again_is_never_failed():
    dispatch, schedule, _ = _dispatch(1, ("a",), retries=1)
    dispatch.begin()
    for n, worker in enumerate(("b", "c", "d")):
        assert _ids(dispatch.lost(FakePack("p0"), "its node was lost", charged=False))[1:] == [
            ("requeue", "p0"),
            StartWorker(),
        ]
        assert _ids(dispatch.worker_started(worker)) == [("submit", "p0", worker)], n
    assert schedule.report.failed_packs == []


def test_a_lost_worker_never_gets_another_pack():
    dispatch, schedule, _ = _dispatch(3, ("a", "b"))
    dispatch.begin()  # a: p0, b: p1
    dispatch.lost(FakePack("p0"), "its node was lost", charged=False)
    assert [p.id for p in schedule.queue] == ["p0", "p2"]
    assert _ids(dispatch.finished(FakePack("p1"), {})) == [
        ("finished", "p1"),
        ("submit", "p0", "b"),
    ], "the live worker takes the requeued pack; nothing goes to the dead one"


def test_a_requeued_pack_goes_to_a_live_workers_free_slot_before_a_fresh_worker():
    dispatch, _, _ = _dispatch(3, ("a", "b"), in_flight=2)
    dispatch.begin()  # a: p0, p1; b: p2
    assert _ids(dispatch.lost(FakePack("p0"), "its node was lost", charged=False)) == [
        Kill("a"),
        ("requeue", "p0"),
        ("requeue", "p1"),
        ("submit", "p1", "b"),
        StartWorker(),
    ]


def test_a_worker_process_that_died_on_a_live_node_charges_its_packs_a_retry():
    dispatch, schedule, _ = _dispatch(2, ("a",), in_flight=2, retries=1)
    dispatch.begin()  # a: p0, p1
    first = dispatch.lost(FakePack("p1"), "its worker process died", charged=True)
    assert _ids(first) == [Kill("a"), ("requeue", "p0"), ("requeue", "p1"), StartWorker()]
    dispatch.worker_started("b")
    second = dispatch.lost(FakePack("p0"), "its worker process died", charged=True)
    assert first[1].line == "pack p0: its worker process died; it runs again (retry 1 of 1)"
    assert _ids(second) == [Kill("b"), ("failed", "p1"), ("failed", "p0")]
    assert second[1].reason == "its worker process died (2 times; resources.retries 1)"
    assert schedule.report.failed_packs == ["p1", "p0"]
    assert dispatch.live_workers() == 0


def test_a_requeued_pack_goes_to_an_idle_worker_of_a_local_instance():
    dispatch, _, _ = _dispatch(1, ("a", "b"))
    dispatch.begin()  # a: p0; b idle (kept warm for the pool)
    assert _ids(dispatch.lost(FakePack("p0"), "its node was lost", charged=False)) == [
        Kill("a"),
        ("requeue", "p0"),
        ("submit", "p0", "b"),
    ], "no fresh worker is needed"
