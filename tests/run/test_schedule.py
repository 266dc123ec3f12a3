"""The driver's scheduling without Ray: slot counts, the order packs are handed out, and the
account of finished and failed packs, driven by a stand-in pool of workers."""

from __future__ import annotations

import copy

import pytest

from dd.plan.packs import pack_cost
from dd.plan.sweep import Resources, parse_spec
from dd.run.schedule import Schedule, SweepReport, plan, worker_slots
from dd.store.schema import pack_table
from dd.store.sweep import SweepStore
from helpers import TINY_GAUSSIAN


def _packs(tmp_path):
    mapping = {
        **copy.deepcopy(TINY_GAUSSIAN),
        "grid": {"data.dim": [20, 30, 40, 50], "seed": [0, 1, 2]},  # one pack per dim
        "resources": {"cpus": 1},
    }
    spec = parse_spec(mapping)
    packs, stored = plan(spec, SweepStore(tmp_path, spec.name))
    assert stored == 0
    return spec, packs


@pytest.mark.parametrize(
    ("resources", "cluster", "n_packs", "slots"),
    [
        (Resources(cpus=1), {"CPU": 8}, 20, 8),
        (Resources(cpus=2), {"CPU": 7}, 20, 3),
        (Resources(cpus=1), {"CPU": 8}, 3, 3),  # never more workers than packs
        (Resources(cpus=4), {"CPU": 2}, 5, 1),  # at least one: Ray waits for room
        (Resources(cpus=1, gpus=0.5), {"CPU": 16, "GPU": 2}, 20, 4),
        (Resources(cpus=1, gpus=1 / 3), {"CPU": 16, "GPU": 1}, 20, 3),  # no float shortfall
        (Resources(cpus=4, gpus=1), {"CPU": 8, "GPU": 4}, 20, 2),  # the scarcer of the two
    ],
)
def test_worker_slots_fit_the_cluster(resources, cluster, n_packs, slots):
    assert worker_slots(resources, cluster, n_packs) == slots


def test_packs_go_out_longest_first_each_once(tmp_path):
    _, packs = _packs(tmp_path)
    assert len(packs) == 4
    schedule = Schedule(packs, SweepReport(planned=12, already_stored=0, packs=len(packs)))
    handed = []
    while (pack := schedule.next_pack()) is not None:
        handed.append(pack)
    assert sorted(p.id for p in handed) == sorted(p.id for p in packs)
    costs = [pack_cost(p) for p in handed]
    assert costs == sorted(costs, reverse=True) and costs[0] > costs[-1]
    assert schedule.next_pack() is None


def test_a_pool_of_workers_drains_the_schedule_and_the_report_counts_every_pack(tmp_path):
    """Two stand-in workers, as the driver feeds its Ray actors: each free worker takes the
    next pack; one pack fails, one ran out of memory and split; every trial is counted once."""
    spec, packs = _packs(tmp_path)
    report = SweepReport(planned=len(spec.trials), already_stored=0, packs=len(packs))
    schedule = Schedule(packs, report)
    assert schedule.total_trials == len(spec.trials)
    failing, splitting = packs[0].id, packs[1].id
    busy = {w: schedule.next_pack() for w in ("a", "b")}
    lines, released = [], []
    while busy:
        worker = min(busy)  # the driver takes whichever finishes first; any order will do
        pack = busy.pop(worker)
        if pack.id == failing:
            lines.append(schedule.failed(pack, "RuntimeError: boom"))
        else:
            result = {"pack_id": pack.id, "oom_splits": 2 if pack.id == splitting else 0}
            lines.append(schedule.finished(pack, result))
        if (following := schedule.next_pack()) is not None:
            busy[worker] = following
        else:
            released.append(worker)
    assert sorted(released) == ["a", "b"], "each worker is let go once nothing is left"
    assert report.failed_packs == [failing]
    assert report.trials_run == len(spec.trials) - len(packs[0].trials)
    assert report.oom_splits == 2 and len(report.placements) == len(packs) - 1
    assert f"pack {failing} failed: RuntimeError: boom" in lines
    assert f"pack {splitting} ran out of memory; split 2 times" in lines
    record = report.run_record("2026-01-01T00:00:00")
    assert record["failed_packs"] == 1 and record["oom_splits"] == 2
    assert record["trials_run"] == report.trials_run and record["packs"] == len(packs)


def test_the_plan_leaves_out_stored_trials(tmp_path):
    spec, packs = _packs(tmp_path)
    store = SweepStore(tmp_path, spec.name)
    first = packs[0]
    rows = [[{"epoch": 0, "step": 0, "test_error": 0.5}] for _ in first.trials]
    store.write_pack(
        first.id,
        pack_table(
            sweep=spec.name,
            pack_id=first.id,
            trial_ids=list(first.trial_ids),
            trials=list(first.trials),
            rows=rows,
            wall_time_s=0.0,
            jax_version="0",
            platform="cpu",
            device_kind="cpu",
        ),
    )
    again, stored = plan(spec, store)
    assert stored == len(first.trials)
    assert sum(len(p.trials) for p in again) == len(spec.trials) - len(first.trials)


def test_the_watchdog_tells_a_pack_that_reaches_no_evaluation_point():
    from dd.run.schedule import Watchdog

    now = [0.0]
    dog = Watchdog(minutes=1, clock=lambda: now[0])
    dog.started("p")
    now[0] = 59.0
    assert dog.stalled("p", None) is None, "within the limit"
    now[0] = 61.0
    reason = dog.stalled("p", None)
    assert reason.startswith("stalled: no epoch reached for 61 s since it started")
    assert "resources.stall_minutes 1" in reason


def test_the_watchdog_waits_as_long_as_the_measured_rate_predicts():
    from dd.run.schedule import Watchdog

    now = [0.0]
    dog = Watchdog(minutes=1, clock=lambda: now[0])
    dog.started("p")
    record = {"epoch": 10, "epochs_per_s": 0.1, "next_epoch": 20}  # 100 s to the next point
    now[0] = 5.0
    assert dog.stalled("p", record) is None, "progress seen: the clock restarts"
    now[0] = 5.0 + 299.0
    assert dog.stalled("p", record) is None, "within 3 x the predicted 100 s"
    now[0] = 5.0 + 301.0
    assert "after epoch 10" in dog.stalled("p", record)
    assert Watchdog(minutes=0).stalled("p", None) is None, "0 turns it off"
