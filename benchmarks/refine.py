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
[--grok-epochs 3000] [--no-dense] [--no-grok] [--report-only]; writes benchmarks/refine.json
(with --no-grok, the boundary part stays in benchmarks/refine_grok.json from the run that
measured it) and the "Refinement" section of docs/bench.md. The issue's target is 500 epochs x
3 seeds; nothing here is a test assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import write_section  # noqa: E402  (one writer of docs/bench.md)

REPORT = ROOT / "benchmarks" / "refine.json"
GROK = ROOT / "benchmarks" / "refine_grok.json"


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
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-dense", action="store_true", help="skip the dense 40-70 grid")
    parser.add_argument("--no-grok", action="store_true", help="skip the weight-decay boundary")
    parser.add_argument("--report-only", action="store_true", help="rewrite the section only")
    args = parser.parse_args()
    if not args.report_only:
        out = measure(args)
        REPORT.write_text(json.dumps(out, indent=1) + "\n")
        if "grok_boundary" in out:
            GROK.write_text(json.dumps({k: out[k] for k in ("grok_epochs", "grok_boundary")}))
    section = markdown(json.loads(REPORT.read_text()), json.loads(GROK.read_text()))
    write_section(section)
    print(section)


def measure(args) -> dict:
    seeds = f"grid.seed={{range: [0, {args.seeds}]}}"
    out: dict = {"epochs": args.epochs, "seeds": args.seeds, "load_before": os.getloadavg()}
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
        if not args.no_dense:
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
        if not args.no_grok:
            out["grok_epochs"] = args.grok_epochs
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
    out["load_after"] = os.getloadavg()
    return out


def markdown(r: dict, grok: dict) -> str:
    """The section: what `dd sweep` printed for each target, its trials against the budget."""
    dense = 299 * r["seeds"]
    used = [int(re.search(r"(\d+) in all", line).group(1)) for line in r["mnist1d"]["lines"]]
    lines = [
        "## Refinement",
        "",
        f"`python benchmarks/refine.py --epochs {r['epochs']} --seeds {r['seeds']}` (raw figures "
        "in benchmarks/refine.json; 2-core CPU). The default spec (sweeps/mnist1d_mlp.yaml) "
        f"at {r['epochs']} epochs and seeds 0-{r['seeds'] - 1}, from the coarse widths 2, 8, 32, "
        "128, 300 with `refine: [{threshold, resolution 1, max_trials 60}, {peak, resolution "
        "1, max_trials 60}]`; then, in the same run, the same spec dense over widths 40-70.",
        "",
        "| target | what `dd sweep` printed | wall (s) |",
        "|---|---|---|",
    ]
    for i, line in enumerate(r["mnist1d"]["lines"]):
        wall = f"{r['mnist1d']['wall_s']:.0f} (both targets, one sweep)" if i == 0 else ""
        lines.append(f"| MNIST-1D MLP {line.split(' of ')[0]} | {line} | {wall} |")
    for key, run in (("dense 40-70", r.get("mnist1d_dense_40_70")),):
        if run:
            said = [x for x in run["lines"] if x.startswith(("model_wise:", "model-wise:"))]
            lines.append(
                f"| {key}, {31 * r['seeds']} trials | {'<br>'.join(said)} | {run['wall_s']:.0f} |"
            )
    g = grok["grok_boundary"]
    lines.append(
        f"| grokking weight-decay boundary (grok_mlp_p31, {grok['grok_epochs']} steps), "
        f"resolution 1.2 | {g['lines'][0]} | {g['wall_s']:.0f} |"
    )
    lines += [
        "",
        f"Trials: {max(used)} in all for both MNIST-1D targets against one eighth of a dense "
        f"integer grid over 2-300 at {r['seeds']} seeds ({dense} / 8 = {dense / 8:g}).",
        "The boundary row comes from benchmarks/refine_grok.json"
        + (f" ({grok['measured_with']})." if "measured_with" in grok else "."),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
