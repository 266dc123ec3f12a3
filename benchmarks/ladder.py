"""The MLP's fixed program-width ladder (``dd.models.mlp.program_width``) against the cut the
cost table would choose for the default sweep (``dd.plan.buckets.choose``) and against one
program per width: programs compiled, padded training FLOPs over the trials' own, and the cost
model's estimated seconds (dd/engine/cost_tables/cpu.json; an estimate, nothing is trained).

Run: python benchmarks/ladder.py [SPEC]  (default sweeps/mnist1d_mlp.yaml)
"""

from __future__ import annotations

import sys

from dd.models.registry import kind_of
from dd.plan.buckets import choose, costs, step_flops, steps_of
from dd.plan.sweep import load_spec


def measure(trials, program_of, cost) -> tuple[int, float, float]:
    """Programs, padded/own FLOPs and estimated seconds when each width trains at
    ``program_of(width)``."""
    programs: dict[int, list] = {}
    for t in trials:
        programs.setdefault(program_of(t.model.width), []).append(t)
    steps = max(steps_of(t) for t in trials)
    own = sum(step_flops(t, t.model.width) for t in trials)
    padded = sum(step_flops(t, w) for w, ts in programs.items() for t in ts)
    seconds = sum(
        cost.compile_s
        + steps * (cost.step_overhead_s + sum(step_flops(t, w) for t in ts) / cost.flops_per_s)
        for w, ts in programs.items()
    )
    return len(programs), padded / own, seconds


def main(path: str = "sweeps/mnist1d_mlp.yaml") -> None:
    trials = list(load_spec(path).trials)
    family, cost = kind_of(trials[0]), costs("mlp", "cpu")
    cut = choose(trials, cost)
    rung = {t.model.width: family.program_width(t) for t in trials}
    print(f"{path}: {len(trials)} trials, cost table dd/engine/cost_tables/cpu.json")
    print("| program widths | programs | padded / own FLOPs | estimated s |")
    print("|---|---|---|---|")
    for name, program_of in (
        ("cost-chosen cut (before)", cut.__getitem__),
        ("fixed ladder (now)", rung.__getitem__),
        ("own width each", lambda w: w),
    ):
        n, flops, seconds = measure(trials, program_of, cost)
        widths = sorted({program_of(t.model.width) for t in trials})
        print(f"| {name}: {widths} | {n} | {flops:.3f} | {seconds:.0f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
