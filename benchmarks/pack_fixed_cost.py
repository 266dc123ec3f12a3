"""A pack's fixed cost in a fresh process: programs compiled and wall seconds of one cold pack.

    .venv/bin/python benchmarks/pack_fixed_cost.py [WIDTH] [EPOCHS]

Trains one pack of the default sweep's workload (MNIST-1D MLP at WIDTH, default 85, 2 seeds,
EPOCHS default 20) twice in this process and prints one JSON line: the XLA programs the first
call obtained (``jax.monitoring``'s backend-compile events, tiny op programs included), their
compile seconds, and the wall seconds of both calls. It reads only ``dd.plan.sweep``,
``dd.plan.packs``
and ``dd.engine.train``, so the same file times an older dd for a before / after figure:

    PYTHONPATH=OLD_CHECKOUT .venv/bin/python benchmarks/pack_fixed_cost.py
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax

from dd.engine.train import train_pack
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


def main(width: int, epochs: int) -> None:
    compiled: list[tuple[str, float]] = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, seconds, **kw: (
            compiled.append((kw.get("fun_name", ""), seconds)) if event == BACKEND_COMPILE else None
        )
    )
    spec = parse_spec(
        {
            "name": "fixed_cost",
            "data": {"name": "mnist1d", "n_train": 4000, "label_noise": 0.15},
            "model": {"name": "mlp", "width": width},
            "train": {
                "optimizer": "sgd",
                "lr": 0.01,
                "momentum": 0.9,
                "batch_size": 100,
                "epochs": epochs,
                "eval_points": 20,
            },
            "grid": {"seed": [0, 1]},
        }
    )
    (pack,) = make_packs(list(spec.trials), spec.resources)
    trials, key = list(pack.trials), pack.key
    walls = []
    for _ in range(2):
        start = time.perf_counter()
        train_pack(trials, key)
        walls.append(time.perf_counter() - start)
        if len(walls) == 1:
            first = list(compiled)
    print(
        json.dumps(
            {
                "width": width,
                "epochs": epochs,
                "programs_first_call": len(first),
                "programs_second_call": len(compiled) - len(first),
                "compile_s_first_call": round(sum(s for _, s in first), 3),
                "wall_s_first_call": round(walls[0], 3),
                "wall_s_second_call": round(walls[1], 3),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main(
        *(int(a) for a in sys.argv[1:3])
        if len(sys.argv) > 2
        else (int(sys.argv[1]) if len(sys.argv) > 1 else 85, 20)
    )
