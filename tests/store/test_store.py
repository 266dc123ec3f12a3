"""The store: atomic writes, corrupt files moved aside, the schema of a pack table."""

from __future__ import annotations

import copy
import os

import pyarrow as pa
import pytest
import yaml

from dd.plan.sweep import parse_spec
from dd.spec.errors import DDError, StoreError
from dd.spec.ids import trial_id
from dd.store.paths import atomic_write_bytes
from dd.store.schema import METRICS, pack_table
from dd.store.sweep import SweepStore
from helpers import TINY_GAUSSIAN, store_trials


def _table(store: SweepStore, n: int = 3) -> tuple[pa.Table, list[str]]:
    trials = list(parse_spec(TINY_GAUSSIAN).trials)[:n]
    ids = [trial_id(t) for t in trials]
    rows = [[{"test_mse": float(i), "n_params": 3}] for i in range(n)]
    return pack_table(
        sweep=store.name,
        pack_id="p1",
        trial_ids=ids,
        trials=trials,
        rows=rows,
        wall_time_s=1.5,
        jax_version="x",
    ), ids


def test_pack_table_has_config_columns_and_every_metric(tmp_path):
    store = SweepStore(tmp_path, "s")
    table, ids = _table(store)
    assert table["trial_id"].to_pylist() == ids
    assert table["data_dim"].to_pylist() == [20, 20, 20]
    assert table["model_name"].to_pylist() == ["raw_features"] * 3
    assert set(METRICS) <= set(table.column_names)
    assert table["test_error"].null_count == 3, "metrics that do not apply are null"


def test_write_pack_is_atomic_and_readable(tmp_path):
    store = SweepStore(tmp_path, "s")
    table, ids = _table(store)
    store.write_pack("p1", table)
    assert store.stored_trial_ids() == set(ids)
    assert [p.name for p in store.packs_dir.iterdir()] == ["pack-p1.parquet"]


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StoreError, match="No space left on device"):
        atomic_write_bytes(target, b"x" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_results_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where a directory should be")
    store = SweepStore(blocker, "s")
    table, _ = _table(store)
    with pytest.raises(StoreError, match="cannot write"):
        store.write_pack("p1", table)


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_corrupt_pack_is_moved_aside_never_read(tmp_path, capsys, damage):
    store = SweepStore(tmp_path, "s")
    table, ids = _table(store)
    path = store.write_pack("p1", table)
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2] if damage == "truncate" else b"garbage" * 100)
    assert store.stored_trial_ids() == set(), "its trials count as not done"
    assert "moved to" in capsys.readouterr().err
    assert not path.exists() and len(list((store.dir / "corrupt").iterdir())) == 1
    assert store.read_results() is None


def test_sweep_names_cannot_escape_the_results_root(tmp_path):
    for bad in ("../x", "a/b", ".hidden", "", "x" * 200):
        with pytest.raises(DDError):
            SweepStore(tmp_path, bad)


def test_config_columns_never_collide_with_metric_or_meta_columns():
    import dataclasses
    import typing

    from dd.datasets import registry as datasets
    from dd.models import registry as models
    from dd.spec.config import Data, Model, Trial
    from dd.store.schema import META, column_name

    datasets.load(), models.load()  # every kind's config class

    columns = set()

    def walk(prefix: str, cls: type) -> None:
        for f in dataclasses.fields(cls):
            kinds = [
                a
                for a in typing.get_args(typing.get_type_hints(cls)[f.name])
                if a is not type(None)
            ] or [typing.get_type_hints(cls)[f.name]]
            kind = kinds[0]
            variants = getattr(kind, "VARIANTS", None)
            for sub in set(variants.values()) if variants else [kind]:
                if dataclasses.is_dataclass(sub):
                    walk(f"{prefix}{f.name}.", sub)
                    break
            else:
                columns.add(column_name(prefix + f.name))

    walk("", Trial)
    for union in (Data, Model):
        for variant in set(union.VARIANTS.values()):
            walk(f"{union.__name__.lower()}.", variant)
    assert "train_objective" in columns and "model_width" in columns
    assert not columns & (set(METRICS) | set(META.names))


def test_a_second_driver_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    import signal
    import subprocess
    import sys

    store = SweepStore(tmp_path, "s")
    with store.driver_lock():
        with pytest.raises(StoreError, match="another driver is running this sweep .pid"):
            with SweepStore(tmp_path, "s").driver_lock():
                pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import time; from dd.store.sweep import SweepStore\n"
                f"with SweepStore({str(tmp_path)!r}, 's').driver_lock():\n"
                "    print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=f"pid {holder.pid}"):
            with store.driver_lock():
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    stale = store.packs_dir / ".tmp-pack-x.parquet-abc"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a file")
    with store.driver_lock():  # non-blocking: it would raise if the killed holder's lock stayed
        assert not stale.exists(), "stale temporaries are removed under the lock"


# ---- identity by content: a dataset's location is not part of a trial's id
def _npz(path, n_classes: int = 4) -> None:
    """The arrays of the pinned legacy ids below (seeded: the same bytes every run)."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.normal(size=(40, 3)).astype("float32"),
        y_train=np.arange(40) % n_classes,
        x_test=rng.normal(size=(8, 3)).astype("float32"),
        y_test=np.arange(8) % n_classes,
    )


def _arrays_spec(path: str, name: str = "npz") -> dict:
    return {
        "name": name,
        "data": {"name": "arrays", "path": path, "n_train": 20},
        "model": {"name": "mlp", "width": 8},
        "train": {"batch_size": 10},
        "grid": {"seed": [0, 1]},
    }


def _image_spec(data_dir: str | None) -> dict:
    data = {"name": "cifar10", "n_train": 100, "n_test": 100}
    return {
        "name": "img",
        "data": data if data_dir is None else {**data, "data_dir": data_dir},
        "model": {"name": "cnn", "width": 4},
        "train": {"batch_size": 50},
    }


def test_a_moved_npz_keeps_its_trial_ids_and_nothing_runs(tmp_path):
    from dd import api

    _npz(tmp_path / "here" / "data.npz")
    stored = store_trials(tmp_path / "r", _arrays_spec(str(tmp_path / "here" / "data.npz")))
    (tmp_path / "shared").mkdir()
    (tmp_path / "here" / "data.npz").rename(tmp_path / "shared" / "data.npz")
    moved = _arrays_spec(str(tmp_path / "shared" / "data.npz"))
    assert [trial_id(t) for t in parse_spec(moved).trials] == stored
    assert str(api.plan(moved, tmp_path / "r")).endswith("2 already stored; 0 to run in 0 packs")


def test_changed_npz_contents_give_new_trial_ids_and_all_run(tmp_path):
    from dd import api

    path = tmp_path / "data.npz"
    _npz(path)
    stored = store_trials(tmp_path / "r", _arrays_spec(str(path)))
    _npz(path, n_classes=11)  # new labels, same path
    changed = _arrays_spec(str(path))
    assert not {trial_id(t) for t in parse_spec(changed).trials} & set(stored)
    assert (
        str(api.plan(changed, tmp_path / "r"))
        .splitlines()[0]
        .endswith("0 already stored; 2 to run in 1 pack")
    )


def test_relative_and_absolute_npz_paths_give_the_same_ids(tmp_path, monkeypatch):
    _npz(tmp_path / "data.npz")
    monkeypatch.chdir(tmp_path)
    relative = parse_spec(_arrays_spec("data.npz")).trials
    absolute = parse_spec(_arrays_spec(str(tmp_path / "data.npz"))).trials
    assert [trial_id(t) for t in relative] == [trial_id(t) for t in absolute]


def test_an_image_data_dir_is_not_part_of_the_id(tmp_path, capsys):
    from dd.cli import main

    stored = store_trials(tmp_path / "r", _image_spec("/mnt/a/cifar"))
    assert [trial_id(t) for t in parse_spec(_image_spec("/shared/cifar")).trials] == stored
    assert [trial_id(t) for t in parse_spec(_image_spec(None)).trials] == stored
    spec = tmp_path / "img.yaml"
    spec.write_text(yaml.safe_dump(_image_spec("/shared/cifar")))
    capsys.readouterr()
    assert main(["status", str(spec), "--results", str(tmp_path / "r")]) == 0
    assert "1 trials planned: 1 done, 0 missing" in capsys.readouterr().out


# ids today's code gave these trials before identity followed content (dd 0.3's scheme):
# the arrays spec at the relative path data.npz, and the cifar10 spec with data_dir
LEGACY_NPZ_IDS = ["27f59838bc2fde8d"]
LEGACY_IMAGE_IDS = ["7d5c25119b181ef9"]


def test_sweeps_stored_with_location_ids_are_still_found(tmp_path, monkeypatch, capsys):
    """Rows written under the old, location-hashing ids (an .npz sweep and an image sweep
    with data_dir) count as stored once renamed to the current ids: by the write path (a
    plan, a sweep) or by ``dd migrate``; ``dd status`` alone reads and renames nothing."""
    from dd import api
    from dd.cli import main
    from dd.spec.ids import legacy_trial_id

    monkeypatch.chdir(tmp_path)
    _npz(tmp_path / "data.npz")
    npz = {**_arrays_spec("data.npz"), "grid": {"seed": [0]}}
    image = _image_spec("/data/cifar")
    for mapping, legacy in ((npz, LEGACY_NPZ_IDS), (image, LEGACY_IMAGE_IDS)):
        assert [legacy_trial_id(t) for t in parse_spec(mapping).trials] == legacy
        assert store_trials(tmp_path / "r", mapping, ids=legacy) == legacy
    assert str(api.plan(npz, tmp_path / "r")).endswith("1 already stored; 0 to run in 0 packs")
    current = [trial_id(t) for t in parse_spec(npz).trials]
    assert SweepStore(tmp_path / "r", "npz").stored_trial_ids() == set(current)
    (tmp_path / "img.yaml").write_text(yaml.safe_dump(image))
    capsys.readouterr()
    assert main(["status", "img", "--results", str(tmp_path / "r")]) == 0
    assert "1 trials planned: 0 done, 1 missing" in capsys.readouterr().out
    assert main(["migrate", "img", "--results", str(tmp_path / "r")]) == 0
    assert main(["status", "img", "--results", str(tmp_path / "r")]) == 0
    assert "1 trials planned: 1 done, 0 missing" in capsys.readouterr().out
    assert SweepStore(tmp_path / "r", "img").stored_trial_ids() == {
        trial_id(parse_spec(image).trials[0])
    }


@pytest.mark.slow
def test_a_pack_whose_file_cannot_be_written_leaves_no_trained_parameters(tmp_path, monkeypatch):
    """A full disk at the pack's write: the error is raised (one line, a StoreError) and the
    parameters saved for its trials go with it, so nothing outlives the rows it belongs to."""
    from dd.plan.packs import make_packs
    from dd.run.worker import run_pack
    from dd.spec.errors import StoreError

    mapping = {
        "name": "full",
        "data": {"name": "digits", "n_train": 100},
        "model": {"name": "mlp", "width": 4},
        "train": {"batch_size": 50, "epochs": 1, "eval_points": 1, "save_params": True},
        "grid": {"seed": [0, 1]},
    }
    spec = parse_spec(mapping)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    store = SweepStore(tmp_path, "full")

    def full_disk(self, pack_id, table):
        raise StoreError(f"{self.pack_path(pack_id)}: cannot write (No space left on device)")

    monkeypatch.setattr(SweepStore, "write_pack", full_disk)
    with pytest.raises(StoreError, match="No space left on device"):
        run_pack("full", str(tmp_path), pack, spec.resources)
    assert not list((store.dir / "params").glob("*")), "no orphaned params file"
    assert store.stored_trial_ids() == set()


def test_curves_that_cannot_be_written_after_failed_packs_are_said(tmp_path, monkeypatch):
    """When packs failed and the curves cannot be written either (a full disk), dd.api.sweep
    says both, one line each, instead of dropping the curve error."""
    import dd.analysis.aggregate
    import dd.run.execute
    from dd import api
    from dd.run.schedule import SweepReport
    from dd.spec.errors import StoreError

    def failed_run(spec, root, **kw):
        return SweepReport(planned=len(spec.trials), already_stored=1, packs=1, failed_packs=["p"])

    def no_space(store, spec=None, table=None):
        raise StoreError(f"{store.dir}/figures/x.png: cannot write (No space left on device)")

    monkeypatch.setattr(dd.run.execute, "run_sweep", failed_run)
    monkeypatch.setattr(dd.analysis.aggregate, "write_curves", no_space)
    # no Ray start in the background: the real run_sweep would take it up, this one cannot (a
    # start left running met the next test's ray.init in this process: "ray.init twice")
    monkeypatch.setattr(api, "_start_early", lambda *args, **kwargs: None)
    result = api.sweep(copy.deepcopy(TINY_GAUSSIAN), tmp_path / "r", quiet=True)
    assert any("packs failed" in m for m in result.messages)
    (said,) = [m for m in result.messages if m.startswith("curves not written: ")]
    assert "No space left on device" in said and "\n" not in said
