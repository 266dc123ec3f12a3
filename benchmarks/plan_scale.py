"""Planning at scale: 1,000,000-trial closed-form grid dry-runs (a 1000 x 1000 product and
one axis of a million seeds), and the resume of a finished 100,000-trial sweep, each timed
as the ``dd`` command a user runs.

Targets (issue 13): each dry run under 30 s and 1 GB, the resume under 10 s. Each command
runs in a fresh process; its wall time and peak resident memory (``wait4``) are reported.
The finished sweep is made by writing its planned packs directly, one row per trial with
null metrics: resuming reads only the stored trial ids, so no fit is needed to time it.

    python benchmarks/plan_scale.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import dd_command  # the benchmarks' one way to run dd

GRID_1M = {
    "name": "plan_1m",
    "data": {"name": "gaussian", "dim": 1000, "n_train": 10, "n_test": 100},
    "model": {"name": "raw_features", "n_features": 1},
    "grid": {"model.n_features": {"range": [1, 1001]}, "seed": {"range": [0, 1000]}},
}
GRID_1M_AXIS = {**GRID_1M, "name": "plan_1m_axis", "grid": {"seed": {"range": [0, 1_000_000]}}}
GRID_100K = {
    "name": "resume_100k",
    "data": {"name": "gaussian", "dim": 200, "n_train": 10, "n_test": 100},
    "model": {"name": "raw_features", "n_features": 1},
    "grid": {"model.n_features": {"range": [1, 101]}, "seed": {"range": [0, 1000]}},
}


def timed(command: list[str]) -> dict:
    """Run ``command``; its wall seconds, peak RSS (MiB), exit code and last output line."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = out.strip().splitlines()
    return {
        "command": " ".join(command),
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "exit": proc.returncode,
        "last_line": lines[-1] if lines else "",
    }


def write_finished_sweep(spec_path: Path, results: Path) -> int:
    """Store every planned pack of the spec (null metrics); returns the number of packs."""
    from dd.plan.sweep import load_spec
    from dd.run.schedule import plan
    from dd.store.schema import pack_table
    from dd.store.sweep import SweepStore

    spec = load_spec(spec_path)
    store = SweepStore(results, spec.name)
    packs, _ = plan(spec, store)
    for pack in packs:
        store.write_pack(
            pack.id,
            pack_table(
                sweep=spec.name,
                pack_id=pack.id,
                trial_ids=list(pack.trial_ids),
                trials=list(pack.trials),
                rows=[[{}] for _ in pack.trials],
                wall_time_s=0.0,
                jax_version="none",
            ),
        )
    store.write_spec(spec.mapping)
    return len(packs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    dd = dd_command()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for spec in (GRID_1M, GRID_1M_AXIS, GRID_100K):
            (tmp / f"{spec['name']}.yaml").write_text(yaml.safe_dump(spec))
        results = {
            key: timed(
                [*dd, "sweep", str(tmp / f"{name}.yaml"), "--dry-run", "--results", str(tmp / "r")]
            )
            for key, name in (("dry_run_1m", "plan_1m"), ("dry_run_1m_axis", "plan_1m_axis"))
        }
        packs = write_finished_sweep(tmp / "resume_100k.yaml", tmp / "results")
        results["resume_100k"] = {
            **timed(
                [
                    *dd,
                    "sweep",
                    str(tmp / "resume_100k.yaml"),
                    "--results",
                    str(tmp / "results"),
                    "--no-curves",
                ]
            ),
            "stored_packs": packs,
        }
    for name, r in results.items():
        print(
            f"{name}: {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mib']} MiB, exit {r['exit']}: "
            f"{r['last_line']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    ok = all(r["exit"] == 0 for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
