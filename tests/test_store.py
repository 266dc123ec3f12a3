"""The store: atomic writes, corrupt files moved aside, the schema of a pack table."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from dd.errors import DDError, StoreError
from dd.schema import METRICS, pack_table
from dd.spec import parse_spec, trial_id
from dd.store import SweepStore
from dd.store_paths import atomic_write_bytes
from helpers import TINY_GAUSSIAN


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

    from dd.config import Data, Model, Trial
    from dd.schema import META, column_name

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
                "import time; from dd.store import SweepStore\n"
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
