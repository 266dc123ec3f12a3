"""Kinds from installed packages: examples/plugin (a ``moons`` dataset and a ``max_weight``
metric) found through its entry points by every registry, run by ``dd sweep`` once pip has
installed it, and run by the per-kind tests through its own tiny case; a broken plugin is one
line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from helpers import run_dd, write_distribution

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "plugin"

PROBE = """
from dd.datasets import registry as datasets
from dd.spec.config import Data
assert Data.VARIANTS == {}, "importing a registry registered kinds"
from dd.analysis.curves import registry as curves
from dd.models import measures, registry as models
from dd.plan.sweep import parse_spec
names = [n for k in datasets.load() for n in k.names]
print("datasets", names[-1], len(names))
print("models", len(models.load()))
print("curves", len(curves.load()))
print("metrics", measures.registered()[-1].name)
mapping = {"name": "p", "data": {"name": "moons"}, "model": {"name": "mlp"}}
spec = parse_spec(mapping | {"train": {"batch_size": "full"}})
print("parsed", type(spec.trials[0].data).__name__)
"""


def _env(*paths: Path) -> dict[str, str]:
    old = [p for p in [os.environ.get("PYTHONPATH")] if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), str(ROOT), *old])}


@pytest.mark.slow
def test_each_registry_loads_the_plugins_and_a_broken_one_is_one_line(tmp_path):
    site = write_distribution(
        tmp_path / "site",
        "ddtest_plugins",
        {
            "dd.datasets": {"moons": "dd_moons.data:KIND"},
            "dd.metrics": {"max_weight": "dd_moons.metrics:MEASURE"},
            "dd.models": {"broken": "ddtest_no_such_module:KIND"},
            "dd.curves": {"not_a_curve": "dd_moons.data:KIND"},
        },
        {},
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(site, PLUGIN / "src"),
    )
    assert out.returncode == 0, out.stderr
    stdout = out.stdout.splitlines()
    assert stdout[0].startswith("datasets moons ")
    assert stdout[3:] == ["metrics max_weight", "parsed MoonsData"]
    assert "Traceback" not in out.stderr
    assert [line for line in out.stderr.splitlines() if line.startswith("dd: plugin")] == [
        "dd: plugin broken = ddtest_no_such_module:KIND (dd.models) left out: "
        "ModuleNotFoundError: No module named 'ddtest_no_such_module'",
        "dd: plugin not_a_curve = dd_moons.data:KIND (dd.curves) left out: "
        "not a CurveKind (got DatasetKind)",
    ]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """examples/plugin installed by pip into a target folder, offline: no index, no build
    isolation (its build backend, flit_core, is a test dependency of dd)."""
    target = tmp_path_factory.mktemp("plugin_site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
        + ["--no-build-isolation", "--target", str(target), str(PLUGIN)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


@pytest.mark.slow
@pytest.mark.ray
def test_dd_sweep_runs_an_installed_plugins_kind_and_metric(installed, tmp_path):
    spec = {
        "name": "moons_plugin",
        "data": {"name": "moons", "train_pool": 60, "n_train": 40, "n_test": 30},
        "model": {"name": "mlp", "width": 4, "depth": 1},
        "train": {"lr": 0.1, "batch_size": 20, "epochs": 2, "eval_points": 2}
        | {"measures": "max_weight"},
        "grid": {"seed": [0, 1]},
    }
    (tmp_path / "moons.yaml").write_text(yaml.safe_dump(spec))
    results = tmp_path / "results"
    out = run_dd(
        "sweep", tmp_path / "moons.yaml", "--results", results, env=_env(installed), cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "ran 2 trials" in out.stderr
    rows = pq.read_table(results / "moons_plugin" / "packs").to_pylist()
    assert len(rows) == 4 and {r["data_name"] for r in rows} == {"moons"}
    assert all(r["status"] == "ok" and r["max_weight"] > 0 for r in rows)


@pytest.mark.slow
def test_the_per_kind_tests_run_an_installed_plugins_kind_through_its_tiny_case(installed):
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "dataset and moons"]
        + [str(ROOT / "tests" / "kinds" / "test_kinds.py")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=_env(installed),
    )
    assert out.returncode == 0, out.stdout[-2000:]
    assert "1 passed" in out.stdout
