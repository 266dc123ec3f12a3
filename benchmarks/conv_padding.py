"""`make bench`, conv-padding section: the FLOPs a conv net's padded program spends beyond the
network's own, by XLA's cost analysis of the lowered program (no device, nothing compiled).

For each base width k, one training step (forward with batch statistics and backward) of
Nakkiran's CNN and of PreActResNet18 on a batch of BATCH CIFAR-shaped 32x32x3 images, lowered
three ways: the network itself, the program dd compiles for it (``program_trial``: widths up
to 16 share a 16-wide program, a wider net has each layer's channels rounded up to a multiple
of 8 where it needs it), and the program of the rule before (the base width rounded up to a
multiple of 8). The waste is the programs' FLOPs summed over a range of k (one trial each)
over the networks' own, less one. Writes benchmarks/conv_padding.json and the
"## Conv padding" section of docs/bench.md; ``--report-only`` rewrites the section from it.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import measure_and_write  # noqa: E402  (the one writer of docs/bench.md)

BATCH = 128
WIDTHS = range(17, 65)
RANGES = ((17, 32), (33, 63))
FAMILIES = ("cnn", "resnet18")


def step_flops(trial) -> float:
    """XLA's FLOP count of one training step of ``trial``'s own network (no padding)."""
    import jax
    import jax.numpy as jnp

    from dd.models.base import apply_model
    from dd.models.registry import make_model

    model = make_model(trial)
    x = jnp.zeros((BATCH,) + trial.data.input_shape)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x[:1], train=False))

    def loss(params, stats):
        logits, stats = apply_model(model, params, stats, x, True)
        return jnp.mean(jax.nn.logsumexp(logits, -1)), stats

    grad = jax.jit(jax.grad(loss, has_aux=True))
    return grad.lower(variables["params"], variables["batch_stats"]).cost_analysis()["flops"]


def trial_of(family: str, width: int):
    from dd.plan.sweep import parse_spec

    spec = parse_spec(
        {
            "name": "padding",
            "data": {"name": "cifar10", "n_train": BATCH, "n_test": 10},
            "model": {"name": family, "width": width},
            "train": {"batch_size": BATCH},
        }
    )
    return spec.trials[0]


def old_rule(trial):
    """The program before: the base width rounded up to a multiple of 8, at least 16."""
    from dd.models.base import round_up_width

    width = round_up_width(trial.model.width, floor=16, multiple=8)
    return dataclasses.replace(trial, model=dataclasses.replace(trial.model, width=width))


def measure() -> dict:
    import jax

    from dd.models.registry import program_trial

    rows = []
    for family in FAMILIES:
        for k in WIDTHS:
            trial = trial_of(family, k)
            rows.append(
                {
                    "family": family,
                    "k": k,
                    "own": step_flops(trial),
                    "program": step_flops(program_trial(trial)),
                    "old_rule": step_flops(old_rule(trial)),
                }
            )
            print(rows[-1], flush=True)
    return {"jax": jax.__version__, "batch": BATCH, "rows": rows}


def waste(rows: list[dict], key: str, lo: int, hi: int) -> float:
    chosen = [r for r in rows if lo <= r["k"] <= hi]
    return sum(r[key] for r in chosen) / sum(r["own"] for r in chosen) - 1


def markdown(report: dict) -> str:
    lines = [
        "## Conv padding",
        "",
        "Measured by `python benchmarks/conv_padding.py` (XLA's cost analysis of the lowered "
        f"program, JAX {report['jax']}; nothing runs, so no machine enters): one training step "
        f"of each width k on a batch of {report['batch']} 32x32x3 images, one trial per k. "
        "FLOPs the padded program spends beyond the network's own, summed over the range: "
        "dd's program (each layer's channels rounded up to a multiple of 8 where it needs "
        "it) against the rule before (the base width rounded up to a multiple of 8).",
        "",
        "| family | k | FLOPs wasted, dd's program | FLOPs wasted, rule before | "
        "worst k, dd's program |",
        "|---|---|---|---|---|",
    ]
    for family in FAMILIES:
        rows = [r for r in report["rows"] if r["family"] == family]
        for lo, hi in RANGES:
            chosen = [r for r in rows if lo <= r["k"] <= hi]
            worst = max(chosen, key=lambda r: r["program"] / r["own"])
            lines.append(
                f"| {family} | {lo}..{hi} | {waste(rows, 'program', lo, hi):.1%} | "
                f"{waste(rows, 'old_rule', lo, hi):.1%} | "
                f"{worst['program'] / worst['own'] - 1:.1%} (k = {worst['k']}) |"
            )
    lines += [
        "",
        "The rule before shared one program among 8 widths; dd now compiles one per width "
        "above 16 (49 programs for k = 1..64 instead of 7).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    measure_and_write(sys.argv[1:], "conv_padding", measure, markdown)
