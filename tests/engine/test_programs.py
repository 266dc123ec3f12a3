"""A pack's fixed costs: two compiled programs per pack key, none for a second pack of the
same key, and one device-to-host transfer per evaluation point (``dd.engine.programs``,
``dd.engine.profile``)."""

from __future__ import annotations

import jax
import pytest

from dd.engine.options import PackOptions
from dd.engine.profile import PackProfile
from dd.engine.train import eval_epochs, train_pack
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec

SPEC = {
    "name": "fixed-costs",
    "data": {"name": "mnist1d", "n_train": 120, "train_pool": 400, "n_test": 300},
    "model": {"name": "mlp", "width": 12},
    "train": {"batch_size": 40, "epochs": 5, "eval_points": 3},
    "grid": {"seed": [0, 1, 2]},
}
CNN_SPEC = {
    **SPEC,
    "model": {"name": "cnn", "width": 2},
    "train": {"batch_size": 40, "epochs": 2, "eval_points": 2},
}


def _pack(mapping: dict):
    spec = parse_spec(mapping)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    return list(pack.trials), pack.key


@pytest.mark.slow
@pytest.mark.parametrize("mapping", [SPEC, CNN_SPEC], ids=["mlp-scan", "cnn-host-loop"])
def test_a_pack_compiles_two_programs_and_a_second_pack_of_its_key_none(mapping):
    trials, key = _pack(mapping)
    jax.clear_caches()
    first, second = PackProfile(), PackProfile()
    train_pack(trials, key, PackOptions(profile=first))
    train_pack(trials, key, PackOptions(profile=second))
    assert first.programs_compiled <= 2, first.record()
    assert second.programs_compiled == 0, second.record()
    assert first.phases["compile"] > 0 and second.phases["compile"] == 0


@pytest.mark.slow
def test_each_evaluation_point_leaves_the_device_in_one_transfer(tmp_path):
    """No implicit device-to-host transfer anywhere in a pack (the guard raises on one), and
    one explicit transfer per evaluation point, per checkpoint and for the final state."""
    trials, key = _pack(SPEC)
    profile = PackProfile()
    with jax.transfer_guard_device_to_host("disallow"):
        options = PackOptions(
            checkpoint=tmp_path / "pack.msgpack", checkpoint_every=2, profile=profile
        )
        rows = train_pack(trials, key, options)
    evals = eval_epochs(trials[0].train)
    saves = {2, 4}  # checkpoint epochs before the last (5)
    assert [r["epoch"] for r in rows[0]] == evals
    assert profile.transfers_to_host == len(evals) + len(saves) + 1, profile.record()
    assert profile.bytes_to_host > 0 and profile.bytes_to_device > 0


@pytest.mark.slow
def test_the_profile_accounts_for_every_phase():
    trials, key = _pack(SPEC)
    profile = PackProfile()
    train_pack(trials, key, PackOptions(profile=profile))
    record = profile.record()
    assert set(record["phases"]) == {"start", "data", "compile", "train", "evaluate", "write"}
    assert all(v >= 0 for v in record["phases"].values())
    assert record["phases"]["train"] > 0 and record["phases"]["data"] > 0


def test_every_evaluation_point_hands_over_the_rows_so_far():
    trials, key = _pack(SPEC)
    seen = []
    options = PackOptions(on_evaluation=lambda epoch, so_far: seen.append((epoch, len(so_far[0]))))
    rows = train_pack(trials, key, options)
    evals = eval_epochs(trials[0].train)
    assert seen == [(e, i + 1) for i, e in enumerate(evals)]
    assert all("n_params" in row and "test_error" in row for row in rows[0])


def test_a_pack_checkpoints_by_training_time_and_ends_with_the_same_numbers(tmp_path, monkeypatch):
    """With checkpoint_seconds, training stops to save about that often (here every epoch:
    the clock moves 100 s per reading), and the numbers equal an uninterrupted run's."""
    import itertools

    import numpy as np

    import dd.engine.train as train_module

    trials, key = _pack(SPEC)
    plain = train_pack(trials, key)
    clock = itertools.count(0.0, 100.0)
    monkeypatch.setattr(train_module.time, "monotonic", lambda: next(clock))
    saved, real_save = [], train_module.ckpt.save

    def save(path, state, epoch, rows):
        saved.append(epoch)
        real_save(path, state, epoch, rows)

    monkeypatch.setattr(train_module.ckpt, "save", save)
    timed = train_pack(
        trials, key, PackOptions(checkpoint=tmp_path / "p.msgpack", checkpoint_seconds=60.0)
    )
    assert saved == [1, 2, 3, 4], "a save at every epoch boundary but the last"
    np.testing.assert_equal(timed, plain)


def test_every_pack_stores_its_profile_and_dd_status_shows_it(tmp_path, capsys):
    """run_pack (what a worker runs) writes profiles/pack-<id>.json; ``dd status --profile``
    prints it as a table and as the documented JSON."""
    import json

    from dd.cli import main
    from dd.run.worker import run_pack
    from dd.store.sweep import SweepStore

    spec = parse_spec(SPEC)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    store = SweepStore(tmp_path, spec.name)
    store.write_spec(spec.mapping)
    result = run_pack(spec.name, str(tmp_path), pack, spec.resources)
    (stored,) = store.profiles()
    assert stored == result["profile"] and stored["pack_id"] == pack.id
    status = ["status", spec.name, "--results", str(tmp_path), "--profile"]
    assert main([*status, "--format", "json"]) == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert set(shown["phases"]) == {"start", "data", "compile", "train", "evaluate", "write"}
    assert shown["programs_compiled"] >= 0 and shown["phases"]["write"] > 0
    assert main(status) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["pack", "start", "data"] and table[1].startswith(pack.id)


def test_training_reports_its_epoch_between_evaluation_points(monkeypatch):
    """With on_progress, training stops about every progress_seconds (here every epoch: the
    clock moves 100 s per reading) to report the epoch reached, with no evaluation added: the
    epochs between the evaluation points are seen, and the numbers equal an unwatched run's."""
    import itertools

    import numpy as np

    import dd.engine.train as train_module

    trials, key = _pack(SPEC)
    plain = train_pack(trials, key)
    clock = itertools.count(0.0, 100.0)
    monkeypatch.setattr(train_module.time, "monotonic", lambda: next(clock))
    reached, evaluated = [], []
    options = PackOptions(
        on_progress=reached.append,
        progress_seconds=60.0,
        on_evaluation=lambda epoch, rows: evaluated.append(epoch),
    )
    watched = train_pack(trials, key, options)
    assert evaluated == eval_epochs(trials[0].train) == [1, 2, 5]
    assert reached == [1, 2, 3, 4, 5], "every epoch reached, 3 and 4 between evaluations"
    np.testing.assert_equal(watched, plain)
