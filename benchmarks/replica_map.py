"""`make bench`, replica-map section: what running a pack's replicas one after another inside
its program (``lax.map``, bit-identical to a lone trial) costs against vmapping them, on CPU.

A pack of the default sweep's MLP (sweeps/mnist1d_mlp.yaml: n_train 4000, n_test 12000, batch
100) at its widths 9..61 (one 64-wide program) x 3 seeds trains EPOCHS epochs three ways:
mapped (``dd.engine.train.MAPPED_PLATFORMS``), vmapped, and one replica after another in the
one-replica program ("sequential"). Each way first compiles (its first run, timed apart), then
runs ROUNDS more times, the ways interleaved so that the machine's load falls on all alike.
Writes benchmarks/replica_map.json and the "## Replica map" section of docs/bench.md.
Run: python benchmarks/replica_map.py [--report-only]
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import measure_and_write  # noqa: E402  (the one writer of docs/bench.md)

EPOCHS, ROUNDS = 20, 3
WIDTHS = [9, 12, 16, 21, 27, 36, 47, 61]
WAYS = ("mapped", "vmapped", "sequential")


def _run(way: str, trials, key) -> tuple[float, float]:
    """Seconds of one ``train_pack`` of the pack trained ``way``, and its first trial's final
    test loss."""
    import dd.engine.train as train
    from dd.engine.options import PackOptions

    train.MAPPED_PLATFORMS = ("cpu",) if way != "vmapped" else ()
    start = time.perf_counter()
    rows = train.train_pack(
        trials, key, PackOptions(execution="sequential" if way == "sequential" else "vmap")
    )
    return time.perf_counter() - start, rows[0][-1]["test_loss"]


def measure() -> dict:
    import jax

    from dd.engine.data import load_dataset
    from dd.models.rng import scoped
    from dd.plan.packs import make_packs
    from dd.plan.sweep import parse_spec

    raw = yaml.safe_load((ROOT / "sweeps" / "mnist1d_mlp.yaml").read_text())
    raw["name"] = "replica_map"
    raw["train"] |= {"epochs": EPOCHS, "eval_points": 4}
    raw["grid"] = {"model.width": WIDTHS, "seed": [0, 1, 2]}
    (pack,) = make_packs(list(parse_spec(raw).trials), parse_spec(raw).resources)
    trials, key = list(pack.trials), pack.key
    load_dataset(key.data)  # generated once, outside every timing
    times: dict[str, list[float]] = {w: [] for w in WAYS}
    first, loss = {}, {}
    with scoped():
        for way in WAYS:
            first[way], loss[way] = _run(way, trials, key)
        for _ in range(ROUNDS):
            for way in WAYS:
                times[way].append(_run(way, trials, key)[0])
    return {
        "machine": f"{platform.platform()}, {jax.default_backend()}, {os.cpu_count()} CPUs",
        "replicas": len(trials),
        "program_width": key.model.width,
        "first_s": first,
        "seconds": times,
        "test_loss": loss,
        "load_average": os.getloadavg()[0],
    }


def markdown(r: dict) -> str:
    median = {w: statistics.median(r["seconds"][w]) for w in WAYS}
    lines = [
        "## Replica map",
        "",
        f"Measured by `python benchmarks/replica_map.py` on {r['machine']}: a pack of "
        f"{r['replicas']} MNIST-1D MLPs (widths {WIDTHS[0]}..{WIDTHS[-1]} x 3 seeds, one "
        f"{r['program_width']}-wide program; the default sweep's data, batch and optimizer), "
        f"{EPOCHS} epochs with 4 evaluations, the median of {ROUNDS} interleaved runs after the "
        f"first (which compiles); the 1-minute load average at the end was "
        f"{r['load_average']:.1f}. Mapped is what a CPU pack runs: each replica's numbers are "
        "those of a pack of one (the first trial's final test loss below, bit for bit).",
        "",
        "| replicas | median s | x mapped | first run s | runs s | first trial's test loss |",
        "|---|---|---|---|---|---|",
    ]
    for w in WAYS:
        runs = ", ".join(f"{s:.1f}" for s in r["seconds"][w])
        lines.append(
            f"| {w} | {median[w]:.2f} | {median[w] / median['mapped']:.2f} | "
            f"{r['first_s'][w]:.1f} | {runs} | {r['test_loss'][w]!r} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    measure_and_write(sys.argv[1:], "replica_map", measure, markdown)
