"""Program widths chosen by cost: how many programs a sweep compiles for a family that pads.

A program compiled at width W trains every narrower trial of its group padded inside it
(``dd.engine.padding``). One program per width costs a compile each; one program for all widths
costs the padded compute of every narrow trial at the widest width. Between the two, the
widths of a group (trials alike but for their width) are cut into buckets, each compiled at
its widest member, so as to minimise the group's estimated seconds

    sum over buckets of  compile_s + steps * (step_overhead_s + sum of its replicas'
                                              flops per step at the bucket's width / flops_per_s)

from the backend's measured costs (the ``buckets`` entry of ``dd/engine/cost_tables/<kind>.json``,
``dd.engine.costs``, measured by ``benchmarks/bucket_costs.py``). The planning driver knows only
whether packs get GPUs, so a GPU table is read as ``gpu.json``; a family or backend missing
from the table keeps its family's own rule (``Family.program_width``, e.g. MLPs below 64
share one 64-wide program).
"""

from __future__ import annotations

import dataclasses
import math

from dd.engine.costs import load_table
from dd.models.registry import kind_of
from dd.spec.config import Trial


@dataclasses.dataclass(frozen=True)
class CompileCosts:
    """One family's measured costs on one backend: seconds to compile a pack's programs, a
    pack step's fixed seconds, and the rate its replicas' training FLOPs run at."""

    compile_s: float
    step_overhead_s: float
    flops_per_s: float


def backend_of(gpus: float) -> str:
    """The cost table's backend for a pack given ``gpus`` (what the planning driver knows)."""
    return "gpu" if gpus > 0 else "cpu"


def costs(family: str, backend: str) -> CompileCosts | None:
    """The table's costs of ``family`` on ``backend``; None where it has none."""
    entry = load_table(backend).get("buckets", {}).get(family)
    return CompileCosts(**entry) if entry else None


def step_flops(trial: Trial, width: int) -> float:
    """Training FLOPs of one step of one replica of ``trial`` run at ``width``: 6 per
    parameter per example (forward and backward multiply-adds), times the input's positions
    for a convolutional family (a relative figure: the table's rate is fitted with it)."""
    family = kind_of(trial)
    at = dataclasses.replace(trial, model=dataclasses.replace(trial.model, width=width))
    positions = 1
    if family.convolutional(trial):
        positions = math.prod(trial.data.input_shape[:-1] or trial.data.input_shape)
    return 6.0 * family.count(at) * _batch(trial) * positions


def _batch(trial: Trial) -> int:
    size = trial.train.batch_size
    return trial.data.n_train if size == "full" else min(size, trial.data.n_train)


def steps_of(trial: Trial) -> int:
    """Training steps of one replica of ``trial``."""
    return trial.train.epochs * max(1, trial.data.n_train // _batch(trial))


def choose(trials: list[Trial], cost: CompileCosts) -> dict[int, int]:
    """Each width of ``trials`` (one group of a family that pads: alike but for their width)
    mapped to the width of the program it trains in, at the least estimated seconds."""
    family = kind_of(trials[0])
    floor = {t.model.width: family.rounded_width(t) for t in trials}
    widths = sorted(set(floor.values()))
    replicas = {w: 0 for w in widths}
    for t in trials:
        replicas[floor[t.model.width]] += 1
    steps = max(steps_of(t) for t in trials)

    def bucket_s(lo: int, hi: int) -> float:
        """Seconds of one program at widths[hi] training widths[lo..hi]'s replicas."""
        flops = sum(replicas[w] * step_flops(trials[0], widths[hi]) for w in widths[lo : hi + 1])
        return cost.compile_s + steps * (cost.step_overhead_s + flops / cost.flops_per_s)

    # best[j]: the least seconds for widths[:j]; cut[j]: where its last bucket starts
    best, cut = [0.0] + [math.inf] * len(widths), [0] * (len(widths) + 1)
    for j in range(1, len(widths) + 1):
        for i in range(j):
            s = best[i] + bucket_s(i, j - 1)
            if s < best[j]:
                best[j], cut[j] = s, i
    program, j = {}, len(widths)
    while j:
        i = cut[j]
        program.update({w: widths[j - 1] for w in widths[i:j]})
        j = i
    return {width: program[w] for width, w in floor.items()}
