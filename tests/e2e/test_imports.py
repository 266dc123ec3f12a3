"""Importing dd changes no process-wide setting, and light commands import light modules."""

from __future__ import annotations

import copy
import json
import os
import pkgutil
import subprocess
import sys

import numpy as np
import pytest

import dd
from dd.store.sweep import SweepStore
from helpers import TINY_GAUSSIAN

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(dd.__path__, "dd.")
    if m.name != "dd.__main__"  # runs the command line
)


def _run(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_importing_every_dd_module_leaves_jax_and_matplotlib_settings_alone():
    assert {
        "dd.api",
        "dd.analysis.plots",
        "dd.engine.train",
        "dd.models.rng",
        "dd.analysis.aggregate",
    } <= set(MODULES)
    found = _run(
        f"""
import importlib, json, sys
import jax, matplotlib
def settings():
    return {{"threefry": bool(jax.config.jax_threefry_partitionable),
             "backend": matplotlib.get_backend()}}
before = settings()
for name in {MODULES!r}:
    importlib.import_module(name)
print(json.dumps({{"before": before, "after": settings(),
                   "pyplot": "matplotlib.pyplot" in sys.modules}}))
""",
        MPLBACKEND="svg",
    )  # a backend other than Agg, named, so reading it resolves nothing
    assert found["before"] == {"threefry": True, "backend": "svg"}
    assert found["after"] == found["before"]
    assert not found["pyplot"], "dd draws with matplotlib.figure.Figure, never pyplot"


@pytest.mark.slow
def test_the_engine_draws_with_its_own_threefry_setting_whatever_the_caller_set():
    """fit_pack scopes the setting itself: the same numbers under either process setting."""
    import jax

    from dd.engine.closed_form import fit_pack
    from dd.plan.sweep import parse_spec

    trials = list(parse_spec(copy.deepcopy(TINY_GAUSSIAN)).trials)[:2]
    with jax.threefry_partitionable(True):
        partitionable = fit_pack(trials)
    with jax.threefry_partitionable(False):
        classic = fit_pack(trials)
    assert jax.config.jax_threefry_partitionable, "the process setting is back as it was"
    for a, b in zip(partitionable, classic, strict=True):
        for metric in ("test_mse", "train_mse", "coef_norm"):
            np.testing.assert_array_equal(a[metric], b[metric], err_msg=metric)


@pytest.mark.slow
def test_dd_status_imports_neither_matplotlib_nor_scipy(tmp_path):
    store = SweepStore(tmp_path, "tiny")
    store.write_spec(copy.deepcopy(TINY_GAUSSIAN))
    from dd.plan.sweep import parse_spec
    from dd.spec.ids import trial_id

    planned = trial_id(parse_spec(copy.deepcopy(TINY_GAUSSIAN)).trials[0])
    store.write_failure("p0", [planned], "boom")  # a trial of the current plan: a failure now
    found = _run(f"""
import contextlib, io, json, sys
from dd.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["status", "tiny", "--results", {str(tmp_path)!r}])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("matplotlib", "scipy"))
print(json.dumps({{"code": code, "out": out.getvalue(), "heavy": heavy}}))
""")
    assert found["code"] == 0 and "tiny: 24 trials planned: 0 done" in found["out"]
    assert "failed pack p0" in found["out"]
    assert found["heavy"] == []


@pytest.mark.slow
def test_the_sweep_driver_imports_neither_matplotlib_nor_scipy():
    """`dd sweep --no-curves` needs neither: they load only for curves, plots and reports."""
    found = _run("""
import json, sys
import dd.api, dd.cli, dd.run.execute
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("matplotlib", "scipy"))
print(json.dumps({"heavy": heavy}))
""")
    assert found["heavy"] == []
