"""Reading a finished sweep of many small pack files before and after they are merged
(``dd.store.compact``, issue 34 item 1): ``dd query``, ``dd curves`` and ``dd status`` each
timed as the command a user runs, in a fresh process, with its peak resident memory and CPU
seconds (``wait4``), on the same store in the same run; then ``dd migrate`` (which merges the
packs) is timed, and the three reads again.

The sweep is a closed-form grid (raw features on Gaussian data, N_FEATURES x SEEDS trials)
whose packs are written directly, one trial per pack as ``resources: {max_pack: 1}`` stores
them, with made-up metrics: the reads do not depend on the values. Targets: 10,000 pack files
read by ``dd query`` in under 1 s and by ``dd curves`` in under 3 s, each under 1 GB.

    python benchmarks/compaction.py [--trials 10000] [--json FILE]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import dd_command  # the benchmarks' one way to run dd


def timed(command: list[str]) -> dict:
    """Run ``command``; its wall seconds, CPU seconds (user + system: what a loaded shared
    machine changes least), peak RSS (MiB), exit code and last output line."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    lines = out.strip().splitlines()
    return {
        "command": " ".join(command),
        "wall_s": round(time.perf_counter() - start, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "exit": os.waitstatus_to_exitcode(status),
        "last_line": lines[-1] if lines else "",
    }


def spec_mapping(trials: int) -> dict:
    features = 100
    return {
        "name": "many_packs",
        "data": {"name": "gaussian", "dim": features, "n_train": 40, "n_test": 100},
        "model": {"name": "raw_features", "n_features": 1},
        "grid": {
            "model.n_features": {"range": [1, features + 1]},
            "seed": {"range": [0, max(1, trials // features)]},
        },
        "resources": {"max_pack": 1},
    }


def write_packs(results: Path, mapping: dict) -> int:
    """Store each planned trial as a pack file of its own, and the spec and plan beside them;
    returns the number of packs."""
    from dd.plan.states import store_plan
    from dd.plan.sweep import parse_spec
    from dd.spec.ids import trial_id
    from dd.store.schema import pack_table
    from dd.store.sweep import SweepStore

    spec = parse_spec(mapping)
    store = SweepStore(results, spec.name)
    for trial in spec.trials:
        tid, p = trial_id(trial), trial.model.n_features
        risk = 0.25 + abs(p - 40) / 40
        row = {
            "step": 0,
            "train_mse": max(0.0, 0.25 * (1 - p / 40)),
            "test_mse": risk + trial.seed * 1e-3,
            "coef_norm": 1.0,
            "n_params": p,
            "p_eff_train": min(p, 40),
            "p_eff_test": min(p, 40) * 0.8,
            "population_risk": risk,
        }
        store.write_pack(
            tid,
            pack_table(
                sweep=spec.name,
                pack_id=tid,
                trial_ids=[tid],
                trials=[trial],
                rows=[[row]],
                wall_time_s=0.01,
                jax_version="none",
            ),
        )
    store.write_spec(spec.mapping)
    store_plan(store, spec, [])
    return len(spec.trials)


def reads(dd: list[str], results: Path) -> dict:
    where = ["--results", str(results)]
    return {
        "query": timed(
            [*dd, "query", "SELECT count(*) FROM trials", "--sweep", "many_packs", *where]
        ),
        "curves": timed([*dd, "curves", "many_packs", *where]),
        "status": timed([*dd, "status", "many_packs", *where]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000, help="pack files to store")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    dd = dd_command()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "r"
        figures: dict = {"uptime_before": os.getloadavg()}
        start = time.perf_counter()
        packs = write_packs(results, spec_mapping(args.trials))
        print(f"{packs} pack files written in {time.perf_counter() - start:.0f} s", flush=True)
        figures.update(packs=packs, before=reads(dd, results))
        figures["compact"] = timed([*dd, "migrate", "many_packs", "--results", str(results)])
        figures["after"] = reads(dd, results)
        merged = sorted((results / "many_packs" / "merged").glob("merged-*.parquet"))
        figures["merged_files"] = len(merged)
        figures["uptime_after"] = os.getloadavg()
    for when in ("before", "after"):
        for name, r in figures[when].items():
            print(
                f"{when} {name}: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU, "
                f"peak RSS {r['peak_rss_mib']} MiB, "
                f"exit {r['exit']}: {r['last_line']}"
            )
    c = figures["compact"]
    print(
        f"compaction (dd migrate): {c['wall_s']:.1f} s wall, {c['cpu_s']:.1f} s CPU, "
        f"peak RSS {c['peak_rss_mib']} MiB, "
        f"exit {c['exit']}; {figures['merged_files']} merged files"
    )
    print(
        f"load average (1, 5, 15 min): before {figures['uptime_before']}, "
        f"after {figures['uptime_after']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    ok = all(r["exit"] == 0 for w in ("before", "after") for r in figures[w].values())
    return 0 if ok and c["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
