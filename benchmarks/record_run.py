"""Record what `dd sweep SPEC` prints on this machine, so the README, the spec headers and
docs/results.md quote a stored run instead of a figure typed by hand.

    python benchmarks/record_run.py sweeps/mnist1d_mlp.yaml [--set PATH=VALUE ...]

runs the spec into a fresh results folder (a temporary one unless --results), and writes
docs/runs/<name>.txt: the command, dd's version and commit, the machine and its load, the
wall time, then every line the sweep printed to stdout, as printed. tests/e2e/test_readme.py
holds the README's quoted output of the default sweep against docs/runs/mnist1d_mlp.txt.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "docs" / "runs"


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(["git", "status", "--porcelain", "dd"], cwd=ROOT, capture_output=True)
    return done.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def record(spec: str, overrides: list[str], results: str | None) -> Path:
    from dd import __version__

    results = results or tempfile.mkdtemp(prefix="dd-record-")
    command = [sys.executable, "-m", "dd", "sweep", spec, "--results", results]
    command += [arg for o in overrides for arg in ("--set", o)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"dd sweep failed ({done.returncode}): {done.stderr[-2000:]}")
    name = next(
        line.split(":")[1].split("/")[-2]
        for line in done.stdout.splitlines()
        if line.startswith("results:")
    )
    shown = ["dd", "sweep", spec] + [arg for o in overrides for arg in ("--set", o)]
    head = [
        f"command: {shlex.join(shown)}",
        f"dd: {__version__} (commit {commit()})",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        f"load average at the end: {os.getloadavg()[0]:.1f}",
        f"wall time: {wall:.0f} s",
        f"recorded: {time.strftime('%Y-%m-%d')}",
        "",
    ]
    lines = [line.replace(results, "results") for line in done.stdout.splitlines()]
    RUNS.mkdir(parents=True, exist_ok=True)
    path = RUNS / f"{name}.txt"
    path.write_text("\n".join(head + lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--results", help="results folder (default: a new temporary one)")
    args = parser.parse_args()
    print(record(args.spec, args.set, args.results))


if __name__ == "__main__":
    main()
