"""`make bench`, start-up: how long a local `dd sweep` takes to its first trained step.

A one-trial sweep (the default sweep's MLP at width 64, ONE epoch, one evaluation) runs
ROUNDS times in fresh processes, each with an empty compilation cache, so every round pays
what a user's first sweep pays: Python and the imports, planning, starting the local Ray
instance and a pack worker, loading the data, compiling, training one epoch, evaluating and
writing the pack. The time to the "1/1 trials done" progress line bounds the time to the
first trained step from above. The pack's own wall time (worker side: data, compile, train,
evaluate) and the time the process takes to exit afterwards (Ray's shutdown) are reported
beside it.

Run: python benchmarks/startup.py [--report-only]. Writes benchmarks/startup.json and the
"## Start-up" section of docs/bench.md.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import dd_command, measure_and_write  # noqa: E402  (one writer of docs/bench.md)

ROUNDS = 3
TARGET_S = 4.0


def one_round(folder: Path) -> dict[str, float]:
    spec = yaml.safe_load((ROOT / "sweeps" / "mnist1d_mlp.yaml").read_text())
    spec.update(name="startup", grid={"model.width": [64], "seed": [0]})
    spec["train"].update(epochs=1, eval_points=1)
    path = folder / "startup.yaml"
    path.write_text(yaml.safe_dump(spec))
    command = dd_command("sweep", path, "--results", folder)
    command += ["--compile-cache", str(folder / "cache"), "--no-curves"]
    start = time.perf_counter()
    marks = {}
    pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    with subprocess.Popen(command, **pipe) as p:
        for line in p.stdout:
            if "trials planned" in line:
                marks["planned_s"] = time.perf_counter() - start
            elif "1/1 trials done" in line:
                marks["first_trial_done_s"] = time.perf_counter() - start
    marks["exit_s"] = time.perf_counter() - start
    if p.returncode != 0 or len(marks) != 3:
        raise SystemExit(f"dd sweep failed (exit {p.returncode}): {marks}")
    import pyarrow.parquet as pq

    (pack,) = (folder / "startup" / "packs").glob("pack-*.parquet")
    marks["pack_s"] = max(pq.read_table(pack, columns=["wall_time_s"])["wall_time_s"].to_pylist())
    return marks


def measure() -> dict:
    rounds = []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as tmp:
            rounds.append(one_round(Path(tmp)))
            print(rounds[-1], flush=True)
    return {
        "machine": f"{os.uname().sysname} {os.uname().machine}, {os.cpu_count()} CPUs",
        "rounds": rounds,
        "median": {k: statistics.median(r[k] for r in rounds) for k in rounds[0]},
        "load_average": os.getloadavg()[0],
    }


def markdown(r: dict) -> str:
    m = r["median"]
    met = "met" if m["first_trial_done_s"] <= TARGET_S else "missed"
    return "\n".join(
        [
            "## Start-up",
            "",
            f"Measured by `python benchmarks/startup.py` on {r['machine']} (1-minute load "
            f"average {r['load_average']:.1f} at the end): a one-trial, one-epoch `dd sweep` "
            f"in a fresh process with an empty compilation cache, median of "
            f"{len(r['rounds'])} rounds.",
            "",
            "| from the command's start to | seconds |",
            "|---|---|",
            "| the plan printed (Python, imports, spec, plan, the local Ray instance "
            f"started) | {m['planned_s']:.1f} |",
            f"| the first trial stored (a worker started, data, compile, one epoch, "
            f"evaluation, write) | {m['first_trial_done_s']:.1f} |",
            f"| the process's exit (after Ray's shutdown) | {m['exit_s']:.1f} |",
            "",
            f"Of these, the pack itself (worker side: data, compile, train, evaluate) took "
            f"{m['pack_s']:.1f} s. Target: the first trained step within {TARGET_S:.0f} s; "
            f"the first trial stored bounds it from above: {m['first_trial_done_s']:.1f} s "
            f"({met}).",
            "",
        ]
    )


if __name__ == "__main__":
    measure_and_write(sys.argv[1:], "startup", measure, markdown)
