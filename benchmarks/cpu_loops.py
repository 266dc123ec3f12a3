"""`make bench`, step-loop section: how a pack of conv nets should loop over its steps and
combine its replicas on this backend, measured (dd.engine.train.execution_plan's choice).

A pack of REPLICAS 1-D CNNs (Nakkiran's 5 layers, k = WIDTH) on MNIST-1D, batch 128, trains
EPOCHS epochs four ways: steps from a host loop over the compiled step or inside an on-device
``lax.scan``, and replicas vmapped in one program or one after another in the one-replica
program. Each way runs twice in this process; the second run is timed (the first compiles).
Writes benchmarks/cpu_loops.json and the "## Step loops" section of docs/bench.md.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import write_section  # noqa: E402  (the one writer of docs/bench.md)

WIDTH, REPLICAS, EPOCHS, N_TRAIN, BATCH = 16, 4, 2, 2048, 128
WAYS = (("host", True), ("host", False), ("scan", True), ("scan", False))


def measure(loop: str, sequential: bool) -> dict:
    from dd.engine.options import PackOptions
    from dd.engine.train import train_pack
    from dd.plan.packs import pack_key
    from dd.plan.sweep import parse_spec

    spec = parse_spec(
        {
            "name": "loops",
            "data": {"name": "mnist1d", "n_train": N_TRAIN, "train_pool": 4000, "n_test": 1000},
            "model": {"name": "cnn", "width": WIDTH},
            "train": {
                "optimizer": "adam",
                "lr": 1e-3,
                "batch_size": BATCH,
                "epochs": EPOCHS,
                "eval_points": 1,
            },
            "grid": {"seed": list(range(REPLICAS))},
        }
    )
    trials, key = list(spec.trials), pack_key(spec.trials[0])
    execution = "sequential" if sequential else "vmap"
    start = time.perf_counter()
    train_pack(trials, key, PackOptions(loop=loop, execution=execution))
    first = time.perf_counter() - start
    start = time.perf_counter()
    train_pack(trials, key, PackOptions(loop=loop, execution=execution))
    seconds = time.perf_counter() - start
    steps = EPOCHS * (N_TRAIN // BATCH)
    return {
        "loop": loop,
        "sequential": sequential,
        "seconds": seconds,
        "ms_per_replica_step": 1e3 * seconds / steps / REPLICAS,
        "compile_s": first - seconds,
    }


def markdown(report: dict) -> str:
    rows = report["ways"]
    best = min(r["ms_per_replica_step"] for r in rows)
    lines = [
        "## Step loops",
        "",
        f"Measured by `python benchmarks/cpu_loops.py` on {report['machine']}: a pack of "
        f"{REPLICAS} 1-D CNNs (k = {WIDTH}) on MNIST-1D, batch {BATCH}, {EPOCHS} epochs "
        "(evaluation included), second of two runs in one process; the 1-minute load "
        f"average at the end was {report.get('load_average', float('nan')):.1f}.",
        "",
        "| steps | replicas | ms per replica-step | x the fastest | compile (s) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {'host loop' if r['loop'] == 'host' else 'lax.scan'} | "
            f"{'one after another' if r['sequential'] else 'vmapped'} | "
            f"{r['ms_per_replica_step']:.1f} | {r['ms_per_replica_step'] / best:.1f} | "
            f"{r['compile_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    import jax

    from dd.models.rng import scoped

    with scoped():
        ways = [measure(loop, sequential) for loop, sequential in WAYS]
    report = {
        "machine": f"{platform.platform()}, {jax.default_backend()}, {os.cpu_count()} CPUs",
        "ways": ways,
        "load_average": os.getloadavg()[0],
    }
    (ROOT / "benchmarks" / "cpu_loops.json").write_text(json.dumps(report, indent=1))
    section = markdown(report)
    write_section(section)
    print(section)


if __name__ == "__main__":
    main()
