"""Refinement (`refine:`) against a dense grid, for issue 30's targets.

1. The MNIST-1D MLP (sweeps/mnist1d_mlp.yaml, EPOCHS epochs, SEEDS seeds) from the coarse grid
   widths 2, 8, 32, 128, 300 with ``refine: [{threshold, resolution 1}, {peak}]``
   (max_trials 60 each): the trials used, the bracket, and the trials of a dense integer grid
   over 2-300 (299 widths x seeds). With --dense, the same spec dense over widths 40-70 too,
   for the transition it should agree with, and the trials it stores.
2. A grokking weight-decay boundary (sweeps/grok_mlp_p31.yaml, GROK_EPOCHS steps) from weight
   decays 0.01, 0.1, 1, 3 with ``refine: {boundary, scale: log, resolution: 1.2,
   max_trials: 30}``.

Each runs `dd sweep` with --set in a temporary results folder on the local Ray instance and
reads its closing lines. Run: python benchmarks/refine.py [--epochs 500] [--seeds 3]
[--grok-epochs 3000] [--dense] [--no-grok] [--out FILE]; writes benchmarks/refine.json (or
FILE). The issue's target is 500 epochs x 3 seeds; nothing here is a test assertion.
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

ROOT = Path(__file__).resolve().parent.parent


def dd_sweep(spec: str, results: str, sets: list[str]) -> tuple[float, list[str]]:
    """Run `dd sweep SPEC --set ...`; its wall time and its stdout lines."""
    command = [sys.executable, "-m", "dd", "sweep", str(ROOT / spec), "--results", results]
    for item in sets:
        command += ["--set", item]
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return time.perf_counter() - start, done.stdout.splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--grok-epochs", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--dense", action="store_true")
    parser.add_argument("--no-grok", action="store_true", help="skip the weight-decay boundary")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "refine.json"))
    args = parser.parse_args()
    seeds = f"grid.seed={{range: [0, {args.seeds}]}}"
    out: dict = {"epochs": args.epochs, "seeds": args.seeds, "grok_epochs": args.grok_epochs}
    with tempfile.TemporaryDirectory() as results:
        wall, lines = dd_sweep(
            "sweeps/mnist1d_mlp.yaml",
            results,
            [
                f"train.epochs={args.epochs}",
                "grid.model.width=[2, 8, 32, 128, 300]",
                seeds,
                "refine=[{axis: model.width, find: threshold, resolution: 1, max_trials: 60},"
                " {axis: model.width, find: peak, resolution: 1, max_trials: 60}]",
            ],
        )
        out["mnist1d"] = {"wall_s": wall, "lines": [x for x in lines if " of model." in x]}
        if args.dense:
            wall, lines = dd_sweep(
                "sweeps/mnist1d_mlp.yaml",
                results,
                [
                    f"train.epochs={args.epochs}",
                    "name=mnist1d_dense",
                    "grid.model.width={range: [40, 71]}",
                    seeds,
                ],
            )
            out["mnist1d_dense_40_70"] = {"wall_s": wall, "lines": lines}
        if args.no_grok:
            Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
            print(json.dumps(out, indent=1))
            return
        wall, lines = dd_sweep(
            "sweeps/grok_mlp_p31.yaml",
            results,
            [
                f"train.epochs={args.grok_epochs}",
                "grid.train.weight_decay=[0.01, 0.1, 1.0, 3.0]",
                "refine={axis: train.weight_decay, find: boundary, scale: log,"
                " resolution: 1.2, max_trials: 30}",
            ],
        )
        out["grok_boundary"] = {"wall_s": wall, "lines": [x for x in lines if "boundary" in x]}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
