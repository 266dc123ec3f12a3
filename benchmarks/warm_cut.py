"""The 20-epoch cut (bench.py's workload: 8 widths x 2 seeds x 20 epochs of the MNIST-1D MLP)
through `dd sweep` on a warm local instance (`dd up`) against the eager PyTorch loop, in one
run: issue 34's target is at most 1.0x. A priming sweep first compiles the cut's programs on
the warm worker; then dd and PyTorch rounds alternate, each dd round with seeds of its own
(so it trains, on programs the worker holds). Medians over bench.REPEATS rounds.

Run: python benchmarks/warm_cut.py; writes benchmarks/warm_cut.json and prints the figures.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # the cut's spec, the PyTorch loop and the dd command

TARGET = 1.0  # issue 34: the cut through `dd up` at most 1.0x the PyTorch loop


def dd_round(folder: Path, seeds: list[int], env: dict) -> float:
    """Wall seconds of one `dd sweep` of the cut at ``seeds``, in a fresh process."""
    spec = copy.deepcopy(bench.SPEC)
    spec["grid"]["seed"] = seeds
    path = folder / f"cut_{seeds[0]}.yaml"
    path.write_text(yaml.safe_dump(spec))
    results = folder / f"results_{seeds[0]}"
    command = bench.dd_command("sweep", path, "--results", results, "--no-curves", "--quiet")
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    data = bench.arrays()
    walls: dict[str, list[float]] = {"dd_up": [], "pytorch": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "DD_WARM_STATE": str(tmp / "warm.json")}
        subprocess.run(bench.dd_command("up"), env=env, check=True, capture_output=True)
        try:
            prime = dd_round(tmp, [100, 101], env)
            for r in range(bench.REPEATS):
                walls["dd_up"].append(dd_round(tmp, [200 + 2 * r, 201 + 2 * r], env))
                walls["pytorch"].append(bench.run_torch(data)[0])
                print(
                    f"round {r + 1}: dd_up {walls['dd_up'][-1]:.1f} s, "
                    f"pytorch {walls['pytorch'][-1]:.1f} s",
                    flush=True,
                )
        finally:
            subprocess.run(bench.dd_command("down"), env=env, check=True, capture_output=True)
    median = {k: statistics.median(v) for k, v in walls.items()}
    report = {
        "prime_s": prime,
        "walls_s": walls,
        "median_s": median,
        "dd_up_over_pytorch": median["dd_up"] / median["pytorch"],
        "target": TARGET,
        "load_average": os.getloadavg()[0],
    }
    (bench.ROOT / "benchmarks" / "warm_cut.json").write_text(json.dumps(report, indent=1))
    print(
        f"20-epoch cut after dd up: {median['dd_up']:.1f} s, PyTorch {median['pytorch']:.1f} s, "
        f"ratio {report['dd_up_over_pytorch']:.2f} (target <= {TARGET}); priming sweep "
        f"{prime:.1f} s; load {report['load_average']:.1f}"
    )


if __name__ == "__main__":
    main()
