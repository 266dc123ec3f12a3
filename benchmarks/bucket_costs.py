"""`make bench`: the costs that choose how many programs a sweep compiles (``dd.plan.buckets``),
measured on this machine's backend and written to dd/engine/cost_tables/.

For the default sweep's MLP (MNIST-1D, batch 100, depth 2) it trains packs of R replicas at
width W through dd's engine (``dd.engine.train.train_pack`` with a profile) and reads the compile
seconds of a pack's programs and the seconds per training step. A pack step is modelled as
``step_overhead_s + R * step_flops(W) / flops_per_s`` and fitted by least squares; the compile
seconds are the median over the packs. They are the ``buckets`` entry of
dd/engine/cost_tables/<backend>.json (``dd.engine.costs``; the other entries are kept).

Run: python benchmarks/bucket_costs.py [--backend cpu|gpu]  (default: this JAX's backend)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
POINTS = ((16, 1), (16, 8), (64, 1), (64, 8), (300, 1), (300, 4))  # (width, replicas)
EPOCHS = 10


def pack_spec(width: int, replicas: int):
    from dd.plan.sweep import parse_spec

    return parse_spec(
        {
            "name": "bucket_costs",
            "data": {"name": "mnist1d", "n_train": 4000, "label_noise": 0.15},
            "model": {"name": "mlp", "depth": 2, "width": width},
            "train": {
                "optimizer": "sgd",
                "lr": 0.01,
                "momentum": 0.9,
                "batch_size": 100,
                "epochs": EPOCHS,
                "eval_points": 2,
            },
            "grid": {"seed": list(range(replicas))},
        }
    )


def measure() -> dict:
    import jax

    from dd.engine.options import PackOptions
    from dd.engine.profile import PackProfile
    from dd.engine.train import train_pack
    from dd.plan.buckets import step_flops, steps_of
    from dd.plan.packs import make_packs

    points = []
    for width, replicas in POINTS:
        (pack,) = make_packs(list(pack_spec(width, replicas).trials), pack_spec(1, 1).resources)
        trials = list(pack.trials)
        key = dataclasses_replace_width(pack.key, width)
        profile = PackProfile()
        train_pack(trials, key, PackOptions(profile=profile))
        steps = steps_of(trials[0])
        points.append(
            {
                "width": width,
                "replicas": replicas,
                "compile_s": profile.compile_seconds,
                "step_s": profile.phases["train"] / steps,
                "flops": replicas * step_flops(trials[0], width),
            }
        )
        print(json.dumps(points[-1]), flush=True)
    a = np.array([[1.0, p["flops"]] for p in points])
    b = np.array([p["step_s"] for p in points])
    (overhead, per_flop), *_ = np.linalg.lstsq(a, b, rcond=None)
    return {
        "backend": jax.default_backend(),
        "points": points,
        "mlp": {
            "compile_s": statistics.median(p["compile_s"] for p in points),
            "step_overhead_s": max(float(overhead), 0.0),
            "flops_per_s": 1.0 / max(float(per_flop), 1e-18),
        },
    }


def dataclasses_replace_width(key, width: int):
    """The pack key at exactly ``width``: each point measures its own width's program."""
    import dataclasses

    return dataclasses.replace(key, model=dataclasses.replace(key.model, width=width))


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    result = measure()
    backend = argv[argv.index("--backend") + 1] if "--backend" in argv else result["backend"]
    table_path = ROOT / "dd" / "cost_tables" / f"{backend}.json"
    table = json.loads(table_path.read_text()) if table_path.exists() else {}
    table.setdefault("buckets", {})["mlp"] = result["mlp"]
    table_path.parent.mkdir(exist_ok=True)
    table_path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    (ROOT / "benchmarks" / "bucket_costs.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["mlp"]))


if __name__ == "__main__":
    main(sys.argv[1:])
