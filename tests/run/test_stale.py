"""Partial rows are never results: a running pack's rows so far are seen flagged ``partial``;
once its pack stopped without finishing (failed, killed, cancelled, its node lost) they are
stale: out of the ``results`` and ``trials`` views and the curves, counted by ``dd status``,
queried in the ``stale`` view, and gone when the pack reruns (docs/faults.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from dd.analysis.aggregate import sweep_curves
from dd.analysis.query import run_query
from dd.cli import main
from dd.engine import hooks
from dd.plan.packs import make_packs
from dd.plan.states import load_stored_spec, stored_rows
from dd.plan.sweep import parse_spec
from dd.run.worker import run_pack
from dd.store.sweep import SweepStore

SPEC = {
    "name": "stale",
    "data": {"name": "mnist1d", "n_train": 120, "train_pool": 400, "n_test": 300},
    "model": {"name": "mlp", "width": 12},
    "train": {"batch_size": 40, "epochs": 5, "eval_points": 3},
    "grid": {"model.width": [8, 12], "seed": [0, 1]},
    "resources": {"max_pack": 2},  # two packs: width 8, width 12
}
STALE_LINE = "2 trials stale (partial rows of a pack that stopped: rerun to finish them)"


class Injected(RuntimeError):
    """The fault: a pack that fails after its first evaluation point."""


def _count(sql: str, root) -> int:
    return run_query(sql, root, "stale")[1][0][0]


def _widths(root) -> set:
    store = SweepStore(root, "stale")
    sets, _ = sweep_curves(stored_rows(store, live=True), load_stored_spec(store))
    model_wise = next(c for c in sets if c.kind == "model_wise")
    return {r["x"] for r in model_wise.points.to_pylist()}


@pytest.mark.slow
def test_a_failed_packs_partial_rows_are_stale_and_a_running_packs_are_partial(tmp_path, capsys):
    spec = parse_spec(SPEC)
    narrow, wide = make_packs(list(spec.trials), spec.resources)
    store = SweepStore(tmp_path, "stale")
    store.write_spec(spec.mapping)
    run_pack("stale", str(tmp_path), narrow, spec.resources)
    seen = {}

    def fail(store, pack_id, epoch):  # the pack runs: its rows so far are seen, then it fails
        seen["partial"] = _count("SELECT count(*) FROM results WHERE partial", tmp_path)
        seen["trials"] = _count("SELECT count(*) FROM trials", tmp_path)
        seen["stale"] = _count("SELECT count(*) FROM stale", tmp_path)
        seen["widths"] = _widths(tmp_path)
        raise Injected("injected after the first evaluation")

    remove = hooks.add("after_evaluation", fail)
    try:
        with pytest.raises(Injected):
            run_pack("stale", str(tmp_path), wide, spec.resources)
    finally:
        remove()
    assert seen == {"partial": 2, "trials": 4, "stale": 0, "widths": {8, 12}}, seen
    assert store.stale_partial_files(), "the failed pack's partial file is kept, as stale"

    assert _count("SELECT count(*) FROM results WHERE model_width = 12", tmp_path) == 0
    assert _count("SELECT count(*) FROM trials", tmp_path) == 2
    assert _count("SELECT count(*) FROM results WHERE partial", tmp_path) == 0
    assert _count("SELECT count(DISTINCT trial_id) FROM stale", tmp_path) == 2
    assert _widths(tmp_path) == {8}, "no curve point from a stopped pack's rows"
    assert main(["status", "stale", "--results", str(tmp_path)]) == 0
    assert STALE_LINE in capsys.readouterr().out

    # a record of a process that is gone (a killed worker or driver) keeps them stale
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    with store.running(wide.id, trials=2) as update:
        update(pid=int(gone.stdout))
        assert _count("SELECT count(*) FROM trials", tmp_path) == 2
    # the pack's own process running it again: its rows so far are live until it writes anew
    with store.running(wide.id, trials=2):
        assert _count("SELECT count(*) FROM results WHERE partial", tmp_path) == 2

    run_pack("stale", str(tmp_path), wide, spec.resources)  # the rerun supersedes them
    assert store.stale_partial_files() == [] and store.partial_files() == []
    assert _count("SELECT count(*) FROM trials", tmp_path) == 4
    assert _count("SELECT count(*) FROM stale", tmp_path) == 0
    assert main(["status", "stale", "--results", str(tmp_path)]) == 0
    assert "trials stale" not in capsys.readouterr().out


@pytest.mark.ray
@pytest.mark.slow
def test_a_sweep_whose_packs_all_failed_writes_no_curves(tmp_path):
    """Every pack fails after its first evaluation (a fault through ``dd.engine.hooks``): the
    sweep says in one line why it has no curves, writes none, and its partial rows are stale."""
    from faultsite.dd_faults import env as faults_env
    from helpers import run_dd

    path = tmp_path / "stale.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "resources": {"max_pack": 2, "retries": 0}}))
    results = tmp_path / "r"
    done = run_dd(
        "sweep",
        path,
        "--results",
        results,
        "--cpus",
        "1",
        env=faults_env(fail_after_evaluation=True),
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    said = [line for line in done.stderr.splitlines() if "no curves" in line]
    assert len(said) == 1 and "every pack failed" in said[0], done.stderr[-3000:]
    assert not (results / "stale" / "curves").exists(), "no curve from partial rows"
    assert not list((results / "stale" / "running").glob("*.json")), "no pack runs now"
    status = run_dd("status", "stale", "--results", results)
    assert "4 trials stale" in status.stdout, status.stdout
