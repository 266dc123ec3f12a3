"""The worker builds a pack's engine options once, from the sweep's resources."""

from __future__ import annotations

from dd.datasets.base import Locations
from dd.engine.memory import device_budget
from dd.engine.profile import PackProfile
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from dd.run.worker import LiveRows, pack_options
from dd.store.sweep import SweepStore

SPEC = {
    "name": "opts",
    "data": {"name": "gaussian", "dim": 4, "n_train": 8, "n_test": 20},
    "model": {"name": "mlp", "width": 2},
    "train": {"epochs": 2, "eval_points": 1, "batch_size": "full", "save_params": True}
    | {"objective": "mse"},
    "grid": {"seed": [0, 1], "data.n_train": [6, 8]},
    "resources": {"checkpoint_every": 3, "checkpoint_minutes": 0.5, "execution": "vmap"},
}


def test_the_pack_options_say_what_the_resources_and_the_store_say(tmp_path):
    spec = parse_spec(SPEC)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    store = SweepStore(tmp_path, spec.name)
    profile, locations = PackProfile(), Locations(data_dir="/images")
    live = LiveRows(store, pack, lambda **_: None)
    options = pack_options(store, pack, spec.resources, profile, locations, live)
    assert options.n_rows == pack.n_rows == 8
    assert options.execution == "vmap" and options.locations == locations
    assert options.memory_budget == device_budget(spec.resources.packs_per_worker())
    assert options.checkpoint == store.checkpoint_path(pack.id)
    assert (options.checkpoint_every, options.checkpoint_seconds) == (3, 30.0)
    assert options.param_files == tuple(store.params_path(t) for t in pack.trial_ids)
    assert options.on_evaluation is live and options.on_progress == live.progress
    assert options.profile is profile
    assert options.progress_seconds == LiveRows.EVERY_S
    unsaved = parse_spec({**SPEC, "resources": {"checkpoint_minutes": 0}})
    (plain,) = make_packs(list(unsaved.trials), unsaved.resources)
    bare = pack_options(store, plain, unsaved.resources, profile, locations, live)
    assert bare.checkpoint is None and bare.checkpoint_every == 0
