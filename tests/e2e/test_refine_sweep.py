"""Refinement rounds on a model with a known answer: the min-norm linear model's interpolation
threshold is p = n (Belkin, Hsu & Xu 2019), found exactly from a coarse grid, reproduced by a
second run that trains nothing."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from dd import api
from dd.handle import SweepHandle
from dd.store.sweep import SweepStore

N = 20
SPEC = {
    "name": "refine_linear",
    "data": {"name": "gaussian", "dim": 60, "n_train": N, "n_test": 200},
    "model": {"name": "raw_features", "n_features": 1},
    "grid": {"model.n_features": [2, 10, 40, 60], "seed": [0, 1]},
    "curves": {"threshold_metric": "train_mse", "threshold_tol": 1.0e-6},
    "refine": {"axis": "model.n_features", "find": "threshold", "resolution": 1, "max_trials": 30},
}


@pytest.mark.slow
def test_refine_finds_p_equals_n_and_a_second_run_trains_nothing(tmp_path, ray_local, capsys):
    result = api.sweep(dict(SPEC), tmp_path, cpus=2)
    rounds = [line for line in capsys.readouterr().err.splitlines() if line.startswith("round")]
    assert rounds and rounds[0].startswith("round 1: threshold between n_features 10 and 40")
    rows = api.load("refine_linear", tmp_path)
    mse: dict[int, list[float]] = {}
    ps, values = rows["model_n_features"].to_pylist(), rows["train_mse"].to_pylist()
    for p, value in zip(ps, values, strict=True):
        mse.setdefault(p, []).append(value)
    under = sorted(p for p, v in mse.items() if sum(v) / len(v) < 1e-6)
    assert under[0] == N, "the smallest stored p with mean train MSE under tol is n"
    assert N - 1 in mse and sum(mse[N - 1]) / 2 >= 1e-6, "and p = n - 1 is stored, above it"
    assert all(len(v) == 2 for v in mse.values()), "every added p has both seeds"
    closing = [line for line in result.lines if line.startswith("threshold of model.n_features")]
    assert closing == [
        f"threshold of model.n_features between {N - 1} and {N} (resolved to 1); "
        f"{2 * (len(mse) - 4)} trials added, {2 * len(mse)} in all; a dense grid over 2-60 "
        f"at resolution 1 would need {2 * 59} trials"
    ]
    store = SweepStore(tmp_path, "refine_linear")
    table = pq.read_table(store.curve_path("refine")).to_pylist()
    assert [r["round"] for r in table] == list(range(1, len(rounds) + 2))
    assert (table[-1]["lo"], table[-1]["hi"]) == (N - 1, N)
    added = json.loads((store.dir / "refine.json").read_text())["added"]["model.n_features"]
    assert sorted(added) == sorted(set(mse) - {2, 10, 40, 60})
    marked = api.curves("refine_linear", tmp_path)["model_wise"].added
    assert marked == tuple(sorted(float(p) for p in added)), "the figure marks what was added"

    again = api.sweep(dict(SPEC), tmp_path, cpus=2)
    assert again.report.trials_run == 0, "the values added are stored: nothing trains"
    assert [line for line in again.lines if line.startswith("threshold")] == closing
    plan = api.plan(dict(SPEC), tmp_path)
    assert plan.trials.num_rows == 2 * len(mse) and plan.packs.num_rows == 0


def test_stored_added_values_are_planned_and_shown_by_status(tmp_path):
    """An interrupted round: its values are stored before its packs run, so the next run (and
    --dry-run) plans them, and dd status names the round."""
    from dd.analysis.status import status_lines
    from dd.plan.refine import base_key, write_state
    from dd.plan.states import plan_of

    store = SweepStore(tmp_path, "refine_linear")
    store.dir.mkdir(parents=True)
    round_ = {"round": 1, "find": "threshold", "axis": "model.n_features", "lo": 10, "hi": 40}
    round_.update({"at": 40, "seeds": 2, "added": [25.0], "trials_added": 2, "finished": False})
    state = {"base": base_key(SPEC), "added": {"model.n_features": [25]}, "rounds": [round_]}
    write_state(store, state)
    plan = api.plan(dict(SPEC), tmp_path)
    assert sorted(set(plan.trials["model_n_features"].to_pylist())) == [2, 10, 25, 40, 60]
    assert sum(plan.packs["n_trials"].to_pylist()) == 10
    lines, _ = status_lines(store, plan_of(plan.spec))
    said = (
        "refine: round 1, threshold of model.n_features between 10 and 40; +1 values, "
        "its packs are to run or running"
    )
    assert "  " + said in lines
    handle = SweepHandle("refine_linear", tmp_path, lambda stop: None, spec=plan.spec)
    handle.wait()
    assert handle.status()["refine"] == said, "the live handle shows the round too"
    changed = {**SPEC, "data": {**SPEC["data"], "n_test": 300}}
    assert api.plan(changed, tmp_path).trials.num_rows == 8, "another spec: the grid alone"


def test_stored_added_seeds_are_planned_at_their_values_only(tmp_path):
    """Seeds a round added where noise dominated a peak (issue 30) are stored with the sweep:
    the next run and --dry-run plan them at the values they were added at, and dd status
    names them."""
    from dd.analysis.status import status_lines
    from dd.plan.refine import base_key, write_state
    from dd.plan.states import plan_of

    peak = {**SPEC, "refine": {**SPEC["refine"], "find": "peak"}}
    store = SweepStore(tmp_path, "refine_linear")
    store.dir.mkdir(parents=True)
    round_ = {"round": 1, "find": "peak", "axis": "model.n_features", "lo": 2, "hi": 40}
    round_.update({"at": 10, "seeds": 2, "added": [], "seeds_at": [2.0, 10.0, 40.0]})
    round_.update({"seeds_added": [2, 3], "trials_added": 6, "finished": False})
    seeds = {"model.n_features": [{"at": [2, 10, 40], "seed": [2, 3]}]}
    state = {"base": base_key(peak), "added": {}, "seeds": seeds, "rounds": [round_]}
    write_state(store, state)
    plan = api.plan(dict(peak), tmp_path)
    assert plan.trials.num_rows == 8 + 6 and sum(plan.packs["n_trials"].to_pylist()) == 14
    at: dict[int, set] = {}
    ps, seeds_planned = plan.trials["model_n_features"], plan.trials["seed"]
    for p, seed in zip(ps.to_pylist(), seeds_planned.to_pylist(), strict=True):
        at.setdefault(p, set()).add(seed)
    assert at == {2: {0, 1, 2, 3}, 10: {0, 1, 2, 3}, 40: {0, 1, 2, 3}, 60: {0, 1}}
    lines, _ = status_lines(store, plan_of(plan.spec))
    assert any("+0 values, +2 seeds at 3 values" in line for line in lines)
