"""`make bench`, the warm instance of `dd up`: CLI sweeps with and without it.

A one-trial sweep (the default sweep's MLP at width 64, one epoch, one evaluation) as
`dd sweep ... --no-curves` in fresh processes, each measurement with its own empty compilation
cache. Per round: the sweep without `dd up` (a fresh local Ray instance, a worker, compiles);
`dd up`; the same sweep on the warm instance (a fresh worker there, compiles); the same shapes
with another seed (the warm worker: nothing started, nothing compiled); `dd down`. Each sweep
is timed to its "1/1 trials done" line (the first stored trial) and to its exit.

Run: python benchmarks/warm_instance.py [--report-only]. Writes benchmarks/warm_instance.json
and the "## Warm instance (dd up)" section of docs/bench.md.
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

ROUNDS = 2
TARGET_START_S = 2.0  # issue 34: start-up to the first stored trial on the warm instance
TARGET_RATIO = 0.1  # issue 34: the second CLI sweep at most 0.1x the first


def sweep(folder: Path, name: str, seed: int, env: dict) -> dict[str, float]:
    """One `dd sweep` in a fresh process: seconds to its first stored trial and to its exit."""
    spec = yaml.safe_load((ROOT / "sweeps" / "mnist1d_mlp.yaml").read_text())
    spec.update(name="warm-instance", grid={"model.width": [64], "seed": [seed]})
    spec["train"].update(epochs=1, eval_points=1)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    command = dd_command("sweep", path, "--results", folder / name, "--no-curves")
    command += ["--compile-cache", str(folder / f"cache-{name}")]
    start, marks, said = time.perf_counter(), {}, []
    pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    with subprocess.Popen(command, env={**os.environ, **env}, **pipe) as p:
        for line in p.stdout:
            said.append(line)
            if "using the warm instance" in line:
                marks["joined_s"] = time.perf_counter() - start
            elif "trials planned" in line:
                marks["planned_s"] = time.perf_counter() - start
            elif "1/1 trials done" in line:
                marks["first_trial_s"] = time.perf_counter() - start
    marks["exit_s"] = time.perf_counter() - start
    marks["warm"] = float("joined_s" in marks)
    if p.returncode != 0 or "first_trial_s" not in marks:
        raise SystemExit(f"dd sweep failed (exit {p.returncode}): {''.join(said[-5:])}")
    return marks


def timed(*args: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(dd_command(*args), env={**os.environ, **env}, check=True, capture_output=True)
    return time.perf_counter() - start


def one_round(folder: Path) -> dict:
    env = {"DD_WARM_STATE": str(folder / "warm.json")}
    out = {"fresh": sweep(folder, "fresh", 0, env)}
    out["up_s"] = timed("up", env=env)
    try:
        out["warm_first"] = sweep(folder, "warm_first", 0, env)
        out["warm_second"] = sweep(folder, "warm_first", 1, env)  # same shapes, another seed
    finally:
        out["down_s"] = timed("down", env=env)
    return out


def measure() -> dict:
    rounds = []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as tmp:
            rounds.append(one_round(Path(tmp)))
            print(rounds[-1], flush=True)
    median = {
        run: {k: statistics.median(r[run][k] for r in rounds if k in r[run]) for k in r0}
        for run in ("fresh", "warm_first", "warm_second")
        if (r0 := rounds[0][run])
    }
    return {
        "machine": f"{os.uname().sysname} {os.uname().machine}, {os.cpu_count()} CPUs",
        "rounds": rounds,
        "median": median,
        "up_s": statistics.median(r["up_s"] for r in rounds),
        "down_s": statistics.median(r["down_s"] for r in rounds),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }


def markdown(r: dict) -> str:
    m = r["median"]
    fresh, first, second = m["fresh"], m["warm_first"], m["warm_second"]
    start_met = "met" if second["first_trial_s"] <= TARGET_START_S else "missed"
    ratio = second["exit_s"] / fresh["exit_s"]
    ratio_met = "met" if ratio <= TARGET_RATIO else "missed"
    rows = [
        ("without `dd up` (a fresh Ray instance, a worker, compiles)", fresh),
        ("after `dd up`, the first sweep (a fresh worker there, compiles)", first),
        ("after `dd up`, the same shapes with another seed (the warm worker)", second),
    ]
    return "\n".join(
        [
            "## Warm instance (dd up)",
            "",
            f"Measured by `python benchmarks/warm_instance.py` on {r['machine']} (`uptime` at "
            f"the end: {r['uptime']}): a one-trial, one-epoch `dd sweep ... --no-curves` of "
            "the default sweep's MLP at width 64, in fresh processes, each with an empty "
            f"compilation cache; median of {len(r['rounds'])} rounds. `dd up` took "
            f"{r['up_s']:.1f} s and `dd down` {r['down_s']:.1f} s.",
            "",
            "| `dd sweep` | to the first stored trial (s) | to its exit (s) | exit / without |",
            "|---|---|---|---|",
            *(
                f"| {label} | {x['first_trial_s']:.1f} | {x['exit_s']:.1f} | "
                f"{x['exit_s'] / fresh['exit_s']:.2f} |"
                for label, x in rows
            ),
            "",
            f"Targets: start-up to the first stored trial under {TARGET_START_S:.0f} s on the "
            f"warm instance: {second['first_trial_s']:.1f} s with the warm worker ({start_met}); "
            f"the second CLI sweep at most {TARGET_RATIO}x the first: {ratio:.2f} of the sweep "
            f"without `dd up` ({ratio_met}), "
            f"{second['exit_s'] / first['exit_s']:.2f} of the first sweep after `dd up`.",
            "",
            f"Where the warm worker's sweep spends its time: {second['joined_s']:.1f} s to "
            "joining the instance (Python, dd's imports, among them JAX and Flax through the "
            "model registry that reads the spec, the spec, the state file's check), "
            f"{second['planned_s'] - second['joined_s']:.1f} s more to the printed plan, "
            f"{second['first_trial_s'] - second['planned_s']:.1f} s to the first stored trial "
            f"(the pack on the warm worker), {second['exit_s'] - second['first_trial_s']:.1f} "
            "s to the exit (the run's records, the driver leaving Ray). Nothing of it is "
            "Ray's start or a compile any more; the rest is the driver process itself.",
            "",
        ]
    )


if __name__ == "__main__":
    measure_and_write(sys.argv[1:], "warm_instance", measure, markdown)
