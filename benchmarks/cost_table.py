"""`make bench`, cost-table section: the step times ``dd.engine.train.execution_plan`` chooses from.

On this process's device, for Nakkiran's CNN on MNIST-1D (1-D signals, batch BATCH) at program
width WIDTH, times the engine's own compiled training step (``dd.engine.programs.host_step``) for:
one replica (sequential), REPLICAS replicas
vmapped, REPLICAS replicas of width WIDTH side by side in one block-diagonal dense program,
and a mixed narrow pack (widths MIXED) vmapped against block-packed. Each is run STEPS steps
after a warm-up (compile) and the median of ROUNDS rounds is kept. Writes
dd/engine/cost_tables/<device kind>.json (the table ``dd.engine.costs`` reads),
benchmarks/cost_table.json
and the "## Block packs" section of docs/bench.md, with the FLOPs XLA counts for a block
program against its replicas' own (``dd.engine.block.flops``).

    python benchmarks/cost_table.py                 # a few minutes on a 2-core CPU
    python benchmarks/cost_table.py --report-only   # rewrite the table and section only
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import write_section  # noqa: E402  (the one writer of docs/bench.md)

WIDTH, REPLICAS, BATCH, N_TRAIN = 16, 4, 128, 1024
MIXED = (1, 3, 4, 8)
STEPS, ROUNDS = 8, 3


def _spec(widths):
    from dd.plan.resolve import resolve
    from dd.plan.sweep import parse_spec

    return resolve(
        parse_spec(
            {
                "name": "costs",
                "data": {"name": "mnist1d", "n_train": N_TRAIN, "train_pool": 4000, "n_test": 500},
                "model": {"name": "cnn", "width": widths[0]},
                "train": {"optimizer": "sgd", "lr": 0.01, "batch_size": BATCH, "epochs": 1},
                "grid": {"zip": [{"model.width": list(widths), "seed": list(range(len(widths)))}]},
            }
        )
    )


def step_seconds(widths: tuple[int, ...], layout: str) -> float:
    """Median seconds of one training step of a pack of ``widths`` trained as ``layout``."""
    import jax
    import numpy as np

    from dd.engine.data import load_dataset
    from dd.engine.device_data import to_device
    from dd.engine.evaluate import EVAL_CHUNK
    from dd.engine.programs import host_step, prepare
    from dd.engine.step import Program
    from dd.engine.train import execution_plan, replica_values
    from dd.plan.packs import pack_key

    trials = list(_spec(widths).trials)
    key = pack_key(trials[0])
    dataset = load_dataset(key.data)
    loop = execution_plan(key, len(trials), layout).loop
    program = Program(key, N_TRAIN, dataset.n_classes, False, loop=loop)
    data = to_device(dataset, key.data, EVAL_CHUNK)
    setups, replicas = prepare(program, data, replica_values(trials))
    if layout == "block":
        program = dataclasses.replace(program, block=tuple(widths))
    orders = np.zeros((len(trials), N_TRAIN), np.int32)
    rounds = []
    for i in range(ROUNDS + 1):  # the first round compiles
        start = time.perf_counter()
        for s in range(STEPS):
            replicas, orders, _ = host_step(
                program, data, setups, replicas, orders, np.int32(i), np.int32(s), np.bool_(False)
            )
        jax.block_until_ready(replicas)
        rounds.append((time.perf_counter() - start) / STEPS)
    return statistics.median(rounds[1:])


def measure() -> dict:
    import jax

    from dd.engine.block import flops

    same = (WIDTH,) * REPLICAS
    seconds = {
        "sequential": step_seconds((WIDTH,), "sequential"),
        "vmap": step_seconds(same, "vmap"),
        "block": step_seconds(same, "block"),
        "mixed_vmap": step_seconds(MIXED, "vmap"),
        "mixed_block": step_seconds(MIXED, "block"),
    }
    key = _spec((WIDTH,)).trials[0]
    return {
        "machine": f"{platform.platform()}, {jax.default_backend()}, {os.cpu_count()} CPUs",
        "device_kind": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "load_average": os.getloadavg()[0],
        "seconds": seconds,
        "flops": {"same": flops(key, same, BATCH), "mixed": flops(key, MIXED, BATCH)},
    }


def table(report: dict) -> dict:
    """The cost table (``dd.engine.costs``) of what was measured."""
    s = report["seconds"]

    def entry(replicas, seconds):
        return [{"width": WIDTH, "replicas": replicas, "seconds": seconds}]

    blocks = [
        {"sum_width": sum(MIXED), "replicas": len(MIXED), "seconds": s["mixed_block"]},
        {"sum_width": WIDTH * REPLICAS, "replicas": REPLICAS, "seconds": s["block"]},
    ]
    return {
        "device_kind": report["device_kind"],
        "command": "python benchmarks/cost_table.py",
        "jax": report["jax"],
        "step_seconds": {
            "cnn": {
                "sequential": entry(1, s["sequential"]),
                "vmap": entry(REPLICAS, s["vmap"]),
                "block": blocks,
            }
        },
    }


def markdown(report: dict) -> str:
    s, f = report["seconds"], report["flops"]
    per = {
        "one after another": s["sequential"],
        "vmapped (grouped convs)": s["vmap"] / REPLICAS,
        "block-diagonal dense": s["block"] / REPLICAS,
    }
    best = min(per.values())
    lines = [
        "## Block packs",
        "",
        f"Measured by `python benchmarks/cost_table.py` on {report['machine']} (1-minute load "
        f"average {report['load_average']:.1f} at the end): one training step of Nakkiran's "
        f"CNN on MNIST-1D, batch {BATCH}, through the engine's compiled step, median of "
        f"{ROUNDS} rounds of {STEPS} steps after the compile. These are the entries of "
        f"dd/engine/cost_tables/{report['device_kind'].lower()}.json, which `execution_plan` "
        "picks from.",
        "",
        f"{REPLICAS} replicas of k = {WIDTH}:",
        "",
        "| plan | ms per replica-step | x the fastest |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {1e3 * v:.2f} | {v / best:.2f} |" for k, v in per.items()]
    lines += [
        "",
        f"A mixed narrow pack, k = {', '.join(map(str, MIXED))} (program width {WIDTH}): "
        f"vmapped {1e3 * s['mixed_vmap']:.2f} ms a step, one after another "
        f"{len(MIXED)} x {1e3 * s['sequential']:.2f} = {1e3 * len(MIXED) * s['sequential']:.2f} ms "
        f"(each narrow trial steps the {WIDTH}-wide program), block-packed "
        f"{1e3 * s['mixed_block']:.2f} ms: {s['mixed_vmap'] / s['mixed_block']:.2f}x faster "
        f"than vmapped, {len(MIXED) * s['sequential'] / s['mixed_block']:.2f}x faster than "
        "one after another. With this table `auto` picks block packs of widths summing to "
        "at most the best-measured sum for narrow mixed packs, and one after another where "
        "the widths fill the program.",
        "",
        "The waste, as XLA counts it (`dd.engine.block.flops`: forward FLOPs of the compiled block "
        "program against the replicas' own networks, batch "
        f"{BATCH}): {REPLICAS} x k = {WIDTH} {f['same']['waste']:.2f}x, "
        f"k = {', '.join(map(str, MIXED))} {f['mixed']['waste']:.2f}x (a dense conv costs "
        "(sum k)^2 per layer against sum k^2).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    """Measure (or with --report-only reread benchmarks/cost_table.json), then write."""
    from dd.engine.costs import TABLES, kind_slug
    from dd.models.rng import scoped

    raw = ROOT / "benchmarks" / "cost_table.json"
    if argv == ["--report-only"]:
        report = json.loads(raw.read_text())
    else:
        with scoped():
            report = measure()
        raw.write_text(json.dumps(report, indent=1))
    TABLES.mkdir(exist_ok=True)
    path = TABLES / f"{kind_slug(report['device_kind'])}.json"
    kept = json.loads(path.read_text()) if path.exists() else {}  # other keys: dd.plan.buckets'
    path.write_text(json.dumps(kept | table(report), indent=1) + "\n")
    section = markdown(report)
    write_section(section)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
