"""Where a pack's first call spends its time: JAX's own compile events, per program.

    .venv/bin/python benchmarks/compile_profile.py [WIDTH]

Trains one pack of the bench workload in this process (2 seeds, WIDTH default 85; no
persistent cache, which only dd's pack workers set up) and reports, per jitted program, the
seconds spent tracing, lowering to MLIR and compiling in XLA, as ``jax.monitoring`` reports
them, and the wall time of a second call that reuses the compiled programs. Writes the
"## Compile" section of docs/bench.md.
"""

from __future__ import annotations

import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import bench
import jax

from dd.engine.data import load_dataset
from dd.engine.train import train_pack
from dd.plan.packs import pack_key
from dd.plan.sweep import parse_spec


def profile(width: int) -> None:
    """Print per-program compile seconds of one cold pack."""
    events: list[tuple[str, float, str]] = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, seconds, **kw: events.append((event, seconds, kw.get("fun_name", "")))
    )
    spec = parse_spec(
        {
            **bench.SPEC,
            "grid": {"seed": bench.SEEDS},
            "model": {**bench.SPEC["model"], "width": width},
        }
    )
    trials = list(spec.trials)
    load_dataset(trials[0].data)
    walls = []
    for _ in range(2):
        events.clear()
        start = time.perf_counter()
        train_pack(trials, pack_key(trials[0]))
        walls.append(time.perf_counter() - start)
        if len(walls) == 1:
            cold = list(events)
    totals: dict[tuple[str, str], float] = collections.defaultdict(float)
    for event, seconds, program in cold:
        totals[(program, event.rsplit("/", 1)[-1])] += seconds
    lines = [
        "## Compile",
        "",
        f"Measured by `python benchmarks/compile_profile.py {width}` on {os.cpu_count()} "
        f"CPUs (1-minute load average {os.getloadavg()[0]:.1f}): one pack of the 20-epoch "
        f"cut (width {width}, {len(trials)} replicas, {bench.EPOCHS} epochs) trained twice "
        f"in one process. First call {walls[0]:.2f} s, second call (programs reused) "
        f"{walls[1]:.2f} s. The first call's compile phases per program, from "
        "`jax.monitoring` (0.05 s and more):",
        "",
        "| program | phase | seconds |",
        "|---|---|---|",
    ]
    for (program, phase), seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.05:
            lines.append(f"| `{program}` | {phase.removesuffix('_duration')} | {seconds:.2f} |")
    section = "\n".join(lines) + "\n"
    bench.write_section(section)
    print(section)


if __name__ == "__main__":
    profile(int(sys.argv[1]) if len(sys.argv) > 1 else 85)
