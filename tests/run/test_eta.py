"""The sweep's ETA (``dd.run.eta``) against the real remaining time of a recorded schedule:
packs of different cost, each an overhead (start, compile) then epochs at its own rate, run
longest first on two slots, read with a fake clock."""

from __future__ import annotations

import heapq
import math

import pytest

from dd.run.eta import PackProgress, pack_rate, sweep_eta

# A schedule of the kind benchmarks/eta.py records: the MNIST-1D MLP at 40 epochs, one pack per
# width of 3 seeds: (width, seconds to the first step, epochs/s) (illustrative figures).
# Per-step cost is not proportional to parameters (small programs are overhead-bound), which
# is what makes the cost-scaled guess for an unmeasured program imperfect.
RECORDED = [(256, 6.1, 2.1), (128, 5.2, 4.3), (64, 4.8, 8.0), (32, 4.6, 12.5), (16, 4.5, 16.0)]
EPOCHS = 40


def _cost(width: int) -> float:
    return 3 * 4000 * EPOCHS * (40 * width + width * width + 10 * width)


def _schedule(slots: int) -> list[tuple[float, float, float, float, int, str]]:
    """Each pack's (start, first step, end, rate, epochs, group), handed out by cost."""
    order = sorted(RECORDED, key=lambda r: _cost(r[0]), reverse=True)
    free = [0.0] * slots
    out = []
    for width, lead, rate in order:
        start = heapq.heappop(free)
        end = start + lead + EPOCHS / rate
        heapq.heappush(free, end)
        out.append((start, start + lead, end, rate, EPOCHS, f"w{width}", _cost(width)))
    return out


def _seen(schedule, now: float) -> list[PackProgress]:
    """What the driver knows at ``now``: finished packs, running ones with their first and
    latest progress samples (taken as the worker publishes them: after each epoch), queued."""
    packs = []
    for start, first_step, end, rate, epochs, group, cost in schedule:
        base = PackProgress(steps=epochs, cost=cost, group=group)
        if now < start:
            packs.append(base)
            continue
        first_at = first_step + 1 / rate  # the first sample: after the first epoch
        first = (first_at, 1) if now >= first_at else None
        reached = min(epochs, int((now - first_step) * rate)) if now > first_step else 0
        last = (first_step + reached / rate, reached) if first else None
        done = end if now >= end else None
        packs.append(
            PackProgress(epochs, cost, group, started=start, first=first, last=last, finished=done)
        )
    return packs


@pytest.mark.parametrize("slots", [1, 2])
def test_the_eta_is_within_a_factor_of_1_5_of_the_real_remaining_time_after_the_first_pack(
    slots,
):
    schedule = _schedule(slots)
    real_end = max(s[2] for s in schedule)
    first_done = min(s[2] for s in schedule)
    checked = 0
    now = first_done
    while now < real_end:
        eta = sweep_eta(_seen(schedule, now), now, slots)
        real = real_end - now
        # within 1.5x, or (in the last seconds) within the 2 s between progress samples
        close = real / 1.5 <= eta <= real * 1.5 or abs(eta - real) <= 2.0
        assert eta is not None and close, (now, eta, real)
        checked += 1
        now += 0.5
    assert checked > 20


def test_the_trial_count_eta_it_replaces_was_off_by_more():
    """The old ETA (elapsed / trials done x trials left) on the same schedule, after the
    first pack: packs handed out longest first make it far too high."""
    schedule = _schedule(2)
    real_end = max(s[2] for s in schedule)
    first_done = min(s[2] for s in schedule)
    old = first_done / 1 * (len(schedule) - 1)  # one pack (3 trials) of five done
    new = sweep_eta(_seen(schedule, first_done), first_done, 2)
    real = real_end - first_done
    assert old / real > 1.5 and abs(math.log(new / real)) < abs(math.log(old / real))


def test_nothing_measured_gives_no_eta_and_a_finished_sweep_gives_zero():
    queued = [PackProgress(steps=10, cost=1.0), PackProgress(steps=10, cost=2.0)]
    assert sweep_eta(queued, 0.0, 2) is None
    compiling = [PackProgress(steps=10, cost=1.0, started=0.0)]
    assert sweep_eta(compiling, 5.0, 1) is None
    done = [PackProgress(10, 1.0, started=0.0, first=(2.0, 1), last=(11.0, 10), finished=11.0)]
    assert sweep_eta(done, 12.0, 1) == 0.0


def test_a_running_pack_counts_its_steps_since_the_first_sample_not_its_compile_time():
    """10 s compiling, then 10 epochs/s: at epoch 50 the rate is 10, not 50/15 = 3.3, and the
    pack's remaining 350 epochs take 35 s."""
    p = PackProgress(400, 1.0, started=0.0, first=(10.1, 1), last=(15.0, 50))
    assert sweep_eta([p], 15.0, 1) == pytest.approx(35.0, rel=0.01)
    record = {"epochs": 400, "started_at": 0.0, "first_at": 10.1, "first_reached": 1}
    assert pack_rate(record | {"updated_at": 15.0, "reached": 50}) == pytest.approx(10.0, 0.01)
    assert pack_rate(record) is None


def test_queued_packs_share_the_slots():
    """Two measured packs of one program, one running, three queued: 2 slots."""
    running = PackProgress(100, 1.0, "a", started=1.0, first=(1.0, 0), last=(11.0, 100 // 2))
    queued = [PackProgress(100, 1.0, "a") for _ in range(3)]
    # the running one: 50 epochs left at 5/s = 10 s; queued 20 s each (no overhead: its
    # first step came at its start)
    # slots: [10, 0] -> 0+20 -> [10, 20] -> 10+20 -> [20, 30] -> 20+20 -> [30, 40]
    assert sweep_eta([running, *queued], 11.0, 2) == pytest.approx(40.0)
