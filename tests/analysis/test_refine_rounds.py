"""Refinement rounds on fabricated results: a stand-in for the driver stores each planned
trial's rows from a known truth, so the rounds' choices (points or seeds), their budget and
their reproducibility are checked without training."""

from __future__ import annotations

import math

from dd.analysis.aggregate import sweep_curves
from dd.analysis.refine_rounds import refine_sweep
from dd.plan.refine import read_state
from dd.plan.sweep import parse_spec
from dd.run.schedule import SweepReport
from dd.spec.ids import trial_id
from dd.store.sweep import SweepStore
from helpers import write_fabricated_pack

GRID = {"model.width": [2, 8, 16, 32, 64], "seed": [0, 1, 2, 3]}
SPEC = {
    "name": "peaky",
    "data": {"name": "mnist1d", "n_train": 200, "n_test": 100},
    "model": {"name": "mlp", "depth": 2, "width": 2},
    "train": {"epochs": 2, "eval_points": 2},
    "grid": GRID,
    "refine": {"axis": "model.width", "find": "peak", "resolution": 1, "max_trials": 40},
}
# the grid's four seeds scatter widely around the peak at 16; seeds beyond them do not
NOISY = {8: [0.30, 0.50, 0.20, 0.40], 16: [0.45, 0.35, 0.60, 0.40], 32: [0.50, 0.20, 0.35, 0.30]}


def clean(width: int, seed: int) -> float:
    """A peak at 16 (0.5), falling 0.2 per doubling, each seed within 0.002 of it."""
    if width in (2, 64):
        return 0.10 + 0.01 * (seed % 3)
    return 0.5 - 0.2 * abs(math.log2(width / 16)) + 0.002 * ((seed + width) % 3 - 1)


def noisy(width: int, seed: int) -> float:
    return NOISY[width][seed] if width in NOISY and seed < 4 else clean(width, seed)


def flat(width: int, seed: int) -> float:
    """No peak: every width's seeds scatter around 0.3, the even ones higher at 16."""
    return (
        0.3 + (0.06 if width == 16 and seed % 2 == 0 else 0.0) + 0.05 * ((seed * 7 + width) % 3 - 1)
    )


def driver(store: SweepStore, truth):
    """``run``: stores the rows of the spec's trials not stored yet (one pack), as the real
    driver does, and reports how many it ran."""

    def run(spec) -> SweepReport:
        stored = store.read_results()
        have = set(stored["trial_id"].to_pylist()) if stored is not None else set()
        todo = [t for t in spec.trials if trial_id(t) not in have]
        if todo:
            pack_id = f"p{len(store.pack_files())}"
            rows = [
                [
                    {
                        "step": 1,
                        "status": "ok",
                        "train_error": 0.5 if t.model.width == 2 else 0.0,
                        "test_error": truth(t.model.width, t.seed),
                    }
                ]
                for t in todo
            ]
            write_fabricated_pack(store, pack_id, todo, [trial_id(t) for t in todo], rows)
        n = len(spec.trials)
        return SweepReport(planned=n, already_stored=n - len(todo), trials_run=len(todo))

    return run


def refine(tmp_path, truth, mapping=SPEC):
    store = SweepStore(tmp_path, mapping["name"])
    store.dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    spec, report, closing = refine_sweep(
        parse_spec(mapping), store, parse_spec, driver(store, truth), lines.append
    )
    return store, spec, report, lines, closing


def widths_and_seeds(spec) -> dict[int, set]:
    seen: dict[int, set] = {}
    for t in spec.trials:
        seen.setdefault(t.model.width, set()).add(t.seed)
    return seen


def test_a_noisy_peak_gets_seeds_then_points_within_budget_and_a_rerun_trains_nothing(tmp_path):
    store, spec, report, lines, closing = refine(tmp_path, noisy)
    assert lines[0] == (
        "round 1: peak at 16, 95% interval 8-32 (4 seeds); +4 seeds (4-7) at width 8, 16, 32"
    ), "8 and 32 are within the noise of 16: points between them would not narrow it"
    seen = widths_and_seeds(spec)
    assert seen[16] >= set(range(8)) and seen[2] == seen[64] == {0, 1, 2, 3}
    assert any("+2 widths" in line for line in lines[1:]), "seeds resolve it, then points"
    state = read_state(store, SPEC)
    assert sum(r["trials_added"] for r in state["rounds"]) <= 40
    assert len(spec.trials) == 20 + sum(r["trials_added"] for r in state["rounds"])
    assert closing[0].startswith("peak of model.width")
    (mark,) = next(
        c for c in sweep_curves(store.read_results(), spec)[0] if c.kind == "model_wise"
    ).landmarks.to_pylist()
    assert (mark["threshold_x_low"], mark["threshold_x_high"]) == (8, 8), (
        "every seed fits from 8: those added at a few widths (12, 16, 24) are left out"
    )
    assert mark["curve_seeds"] == 4 < mark["n_seeds"]

    _, again, report, lines_again, closing_again = refine(tmp_path, noisy)
    assert report.trials_run == 0 and lines_again == [], "seeds added are stored: none trains"
    assert closing_again == closing and len(again.trials) == len(spec.trials)


def test_a_clean_peak_gets_points_only_and_is_resolved_with_a_tight_interval(tmp_path):
    _, spec, _, lines, closing = refine(tmp_path, clean)
    assert lines[0] == "round 1: peak at 16, 95% interval 16-16 (4 seeds); +2 widths"
    assert all("seed" not in line.split(";")[-1] for line in lines)
    assert all(s == {0, 1, 2, 3} for s in widths_and_seeds(spec).values())
    assert closing[0].startswith(
        "peak of model.width at 16, 95% interval 16-16 (4 seeds), between 15 and 17 (resolved to 1)"
    )


def test_a_flat_null_is_not_significant_and_stops_when_seeds_do_not_narrow_it(tmp_path):
    store, spec, _, lines, closing = refine(tmp_path, flat, {**SPEC, "name": "flat"})
    assert lines and all("not significant" in line for line in lines)
    # round 1's seeds also go to the dip (2) and the largest width (64), which the rise and
    # fall are measured against: the interval narrows to 2-32 once, then no further
    assert len(lines) == 2, "the second round of seeds left the interval as wide: no third"
    assert closing[0].startswith(
        "peak of model.width not significant (mean peak at 16, within the seed noise over "
        "2-32; 13 seeds), between 8 and 32 (interval stopped shrinking with more seeds); "
        "40 trials added, 60 in all"
    )
