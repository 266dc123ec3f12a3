"""Read commands only read: they take the sweep's plan from plan.parquet (``dd.store.plan``),
so they import neither JAX nor Flax, write nothing, and work when the user's data file the
sweep was planned from is gone."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dd.plan.states import load_plan, plan_of, store_plan
from dd.plan.sweep import parse_spec
from dd.store.plan import read_plan
from dd.store.sweep import SweepStore
from helpers import store_trials

SPEC = {
    "name": "npz",
    "data": {"name": "arrays", "n_train": 20},
    "model": {"name": "mlp", "width": 8},
    "train": {"batch_size": 10},
    "grid": {"seed": [0, 1, 2]},
}
GAUSSIAN = {  # closed form: no train section
    "name": "npz",
    "data": {"name": "gaussian", "dim": 3, "n_train": 20, "n_test": 8},
    "model": {"name": "raw_features", "n_features": 2},
    "grid": {"seed": [0, 1, 2]},
}


def _stored_sweep(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A stored sweep of a user's .npz as ``dd sweep`` leaves it (spec, plan, packs), with
    the .npz then deleted; (results root, data file, its trial ids)."""
    data = tmp_path / "data" / "train.npz"
    data.parent.mkdir()
    rng = np.random.default_rng(0)
    np.savez(
        data,
        x_train=rng.normal(size=(40, 3)).astype("float32"),
        y_train=np.arange(40) % 4,
        x_test=rng.normal(size=(8, 3)).astype("float32"),
        y_test=np.arange(8) % 4,
    )
    mapping = {**SPEC, "data": {**SPEC["data"], "path": str(data)}}
    root = tmp_path / "results"
    ids = store_trials(root, mapping)
    spec = parse_spec(mapping)
    store_plan(SweepStore(root, "npz"), spec, [])
    data.unlink()
    return root, data, ids


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _run_cli(*args: str) -> dict:
    """dd's CLI in a fresh interpreter: its exit code, output, and whether it imported JAX or
    Flax."""
    code = (
        "import io, json, sys, contextlib\n"
        "from dd.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    rc = main({list(args)!r})\n"
        "print(json.dumps({'rc': rc, 'out': out.getvalue(),\n"
        "                  'jax': 'jax' in sys.modules, 'flax': 'flax' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_status_and_query_read_the_stored_plan_only(tmp_path):
    root, data, ids = _stored_sweep(tmp_path)
    before = _snapshot(root)
    status = _run_cli("status", "npz", "--results", str(root))
    assert status["rc"] == 0
    assert status["out"].startswith("npz: 3 trials planned: 3 done, 0 missing, 0 failed")
    query = _run_cli(
        "query",
        "SELECT count(DISTINCT trial_id) AS n FROM trials WHERE current",
        "--results",
        str(root),
        "--format",
        "csv",
    )
    assert query["rc"] == 0 and query["out"].split() == ['"n"', "3"]
    for ran in (status, query):
        assert not ran["jax"] and not ran["flax"], "a read command imported the engine"
    assert _snapshot(root) == before, "a read command wrote to the store"
    assert not data.exists()


def test_the_stored_plan_is_the_specs_plan(tmp_path):
    root, _, ids = _stored_sweep(tmp_path)
    stored = read_plan(SweepStore(root, "npz"))
    assert stored is not None
    assert stored.name == "npz" and stored.axes == ("seed",)
    assert sorted(stored.trial_ids) == sorted(ids)


def test_a_store_without_a_plan_reads_its_spec(tmp_path):
    """Stores written before plans were stored still read: the plan comes from spec.yaml."""
    root = tmp_path / "results"
    ids = store_trials(root, GAUSSIAN)
    store = SweepStore(root, "npz")
    assert read_plan(store) is None
    assert sorted(load_plan(store).trial_ids) == sorted(ids)


def test_a_damaged_plan_is_said_and_the_spec_read_instead(tmp_path, capsys):
    root = tmp_path / "results"
    ids = store_trials(root, GAUSSIAN)
    store = SweepStore(root, "npz")
    store_plan(store, parse_spec(GAUSSIAN), [])
    path = store.dir / "plan.parquet"
    path.write_bytes(path.read_bytes()[:-20])
    assert sorted(load_plan(store).trial_ids) == sorted(ids)
    (line,) = capsys.readouterr().err.splitlines()
    assert "plan.parquet is unreadable" in line


def test_plan_of_a_spec_lists_its_trials_in_order():
    plan = plan_of(parse_spec(GAUSSIAN))
    assert len(plan.trial_ids) == 3 and len(set(plan.trial_ids)) == 3
