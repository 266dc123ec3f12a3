"""How the packs of a model are planned: one runner per way of running a model, named by the
model's ``SECTION`` (``train``: gradient descent; ``fit``: closed form). Packing, sizing,
costing, the plan listing and the ETA ask a trial's runner; none of them asks which way a
model runs. The worker runs a pack with the function of the same runner name
(``dd.run.worker``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from dd.engine.closed_form import bytes_per_replica as fitted_bytes
from dd.engine.memory import bytes_per_replica as trained_bytes
from dd.models.base import NetworkModel
from dd.models.registry import kind_of, n_params, program_trial
from dd.spec.config import Trial


@dataclass(frozen=True)
class Runner:
    """``key(trial)``: the trial with its array-valued fields neutralised, at its program width
    (``dd.plan.packs.pack_key``). ``bytes_per_replica``: device
    memory a replica takes. ``cost(trial, key, n_replicas, n_rows)``: relative compute of a
    pack. ``family``: what the plan listing names its program after. ``epochs(trial)``: the
    epochs a pack runs, as its progress counts them (a fit: one; the ETA, dd.run.eta).
    ``sized(trial, key)``: the trial as its pack's memory is sized (at the program's width).
    ``layout(key, trials, execution)``: how a pack computes, for the plan listing.
    ``watched``: whether its packs report evaluation points the stall watchdog waits for.
    ``program(key, trials)``: the program the trials of a key's group train in (the key, with
    what a setting the key erased needs where some trial of the group has it)."""

    name: str
    key: Callable[[Trial], Trial]
    bytes_per_replica: Callable[[Trial], int]
    cost: Callable[[Trial, Trial, int, int], float]
    family: Callable[[Trial], str]
    epochs: Callable[[Trial], int]
    sized: Callable[[Trial, Trial], Trial]
    layout: Callable[[Trial, list[Trial], str], str]
    watched: bool
    program: Callable[[Trial, list[Trial]], Trial] = lambda key, trials: key


def _fitted_key(trial: Trial) -> Trial:
    fit = dataclasses.replace(trial.fit, ridge=0.0)
    return dataclasses.replace(program_trial(trial), seed=0, data=trial.data.neutral(), fit=fit)


SCALED = NetworkModel.SCALED


def _trained_key(trial: Trial) -> Trial:
    # the perpendicular gradient's on/off is per replica too: the group's program has the
    # transform where some trial has it on (``_trained_program``)
    train = dataclasses.replace(
        trial.train,
        lr=1.0,
        weight_decay=0.0,
        grokfast_alpha=0.98,
        grokfast_lamb=0.0,
        orthogonal_grad=False,
    )
    # the per-replica scales first (a program's model, ConvModel, is not to be replaced): 1.0
    # stays (a program without the multiplication), any other value is the same program
    model = dataclasses.replace(
        trial.model,
        init_scale=1.0 if trial.model.init_scale == 1.0 else SCALED,
        output_scale=1.0 if trial.model.output_scale == 1.0 else SCALED,
    )
    program = program_trial(dataclasses.replace(trial, model=model))
    return dataclasses.replace(program, seed=0, data=trial.data.neutral(), train=train)


def _trained_program(key: Trial, trials: list[Trial]) -> Trial:
    """The group's program: with the perpendicular gradient where any of its trials has it
    on (an off replica gets g itself, bit for bit), so a sweep that never turns it on keeps
    its program, and on and off trials share one (``dd.engine.optim.orthogonal_grad``)."""
    if not any(t.train.orthogonal_grad for t in trials):
        return key
    return dataclasses.replace(key, train=dataclasses.replace(key.train, orthogonal_grad=True))


def at_width(trial: Trial, width: int) -> Trial:
    """``trial`` as a program of base width ``width`` compiles it (``NetworkModel.program``)."""
    return dataclasses.replace(trial, model=trial.model.program(width))


def _fitted_cost(trial: Trial, key: Trial, n_replicas: int, n_rows: int) -> float:
    p = kind_of(trial).program_width(trial)
    return n_replicas * n_rows * p * min(n_rows, p)


def _trained_cost(trial: Trial, key: Trial, n_replicas: int, n_rows: int) -> float:
    program = dataclasses.replace(trial, model=key.model)
    return n_replicas * n_rows * trial.train.epochs * n_params(program)


def _trained_layout(key: Trial, trials: list[Trial], execution: str) -> str:
    """The execution plan a training pack takes on this machine (``dd.engine.train``)."""
    from dd.engine.train import execution_plan  # JAX: only when a plan is listed

    plan = execution_plan(key, [t.model.width for t in trials], execution)
    cap = f" (widths summing to <= {plan.block_width})" if plan.block_width else ""
    return f"{plan.layout}{cap}, {plan.loop} loop"


RUNNERS = {
    "train": Runner(
        name="train",
        key=_trained_key,
        bytes_per_replica=trained_bytes,
        cost=_trained_cost,
        family=lambda trial: kind_of(trial).name,
        epochs=lambda trial: trial.train.epochs,
        sized=lambda trial, key: at_width(trial, key.model.width),
        layout=_trained_layout,
        watched=True,
        program=_trained_program,
    ),
    "fit": Runner(
        name="fit",
        key=_fitted_key,
        bytes_per_replica=fitted_bytes,
        cost=_fitted_cost,
        family=lambda trial: "closed_form",
        epochs=lambda trial: 1,
        sized=lambda trial, key: trial,
        layout=lambda key, trials, execution: "closed form",
        watched=False,
    ),
}


def runner_of(trial: Trial) -> Runner:
    """The runner of ``trial``'s model (by its ``SECTION``)."""
    return RUNNERS[trial.model.SECTION]
