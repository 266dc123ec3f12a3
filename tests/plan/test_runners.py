"""Every model kind names a runner (``Model.SECTION``), and packing asks the runner, never
which way a model runs (``dd.plan.runners``)."""

from __future__ import annotations

import copy

import pytest

from dd.models import registry as models
from dd.plan.packs import make_packs, pack_cost, pack_key
from dd.plan.runners import RUNNERS, runner_of
from dd.plan.sweep import Resources, parse_spec
from dd.spec.config import SECTIONS, Model
from helpers import TINY_GAUSSIAN

TRAINED = {
    "name": "t",
    "data": {"name": "gaussian", "dim": 4, "n_train": 16, "n_test": 8},
    "model": {"name": "mlp", "width": 8},
    "train": {"epochs": 3, "lr": 0.1, "objective": "mse", "batch_size": 8},
    "grid": {"seed": [0, 1], "train.lr": [0.1, 0.2]},
}


@pytest.mark.parametrize("name", sorted(kind.name for kind in models.load()))
def test_every_model_kind_has_a_runner_and_a_section(name):
    section = Model.VARIANTS[name].SECTION
    assert section in RUNNERS and section in SECTIONS


def test_a_fit_and_a_training_each_plan_through_their_runner():
    fitted = parse_spec(copy.deepcopy(TINY_GAUSSIAN)).trials
    trained = parse_spec(copy.deepcopy(TRAINED)).trials
    assert runner_of(fitted[0]).name == "fit" and runner_of(trained[0]).name == "train"
    assert runner_of(fitted[0]).epochs(fitted[0]) == 1
    assert runner_of(trained[0]).epochs(trained[0]) == 3
    assert not runner_of(fitted[0]).watched and runner_of(trained[0]).watched
    # what travels as arrays is neutral in the key: seeds and learning rates share one program
    assert len({pack_key(t) for t in trained}) == 1
    (pack,) = make_packs(list(trained), Resources())
    assert len(pack.trials) == 4 and pack_cost(pack) > 0
    assert runner_of(trained[0]).layout(pack.key, list(pack.trials), "vmap").startswith("vmap")
    assert runner_of(fitted[0]).layout(fitted[0], [fitted[0]], "auto") == "closed form"


ORTHO = {
    "name": "ortho_tiny",
    "data": {"name": "modular", "p": 7, "op": "x+y", "train_fraction": 0.5},
    "model": {"name": "mlp", "width": 16},
    "train": {"optimizer": "adamw", "lr": 0.01, "batch_size": "full", "epochs": 4},
    "grid": {"train.orthogonal_grad": [False, True], "seed": [0, 1]},
}


def test_a_sweep_over_the_perpendicular_gradient_plans_one_pack_whose_program_has_it():
    """The perpendicular gradient is a per-replica value: on and off trials share one pack,
    whose program includes the transform because some trial has it on; ids keep it."""
    trials = parse_spec(copy.deepcopy(ORTHO)).trials
    assert len({pack_key(t) for t in trials}) == 1
    (pack,) = make_packs(list(trials), Resources())
    assert len(pack.trials) == 4
    assert pack.key.train.orthogonal_grad, "the program has the transform"
    assert len(set(pack.trial_ids)) == 4, "on and off are distinct trials"
    off = [t for t in trials if not t.train.orthogonal_grad]
    (plain,) = make_packs(off, Resources())
    assert not plain.key.train.orthogonal_grad, "a pack never using it pays nothing"
