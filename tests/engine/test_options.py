"""One options object per pack run (``dd.engine.options.PackOptions``)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from dd.datasets.base import Locations
from dd.engine import data as host_data
from dd.engine.options import PackOptions
from dd.engine.train import train_pack
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from helpers import idx_split, write_idx_dataset


def test_train_pack_takes_its_trials_its_key_and_one_options_object():
    assert list(inspect.signature(train_pack).parameters) == ["trials", "key_trial", "options"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PackOptions().execution = "vmap"  # type: ignore[misc]


def test_a_half_of_a_split_pack_has_its_own_checkpoint_and_parameter_files():
    files = (Path("a.msgpack"), Path("b.msgpack"), Path("c.msgpack"))
    whole = PackOptions(checkpoint=Path("ck/pack-1.msgpack"), param_files=files, n_rows=30)
    first, second = whole.part(slice(0, 2), "a"), whole.part(slice(2, None), "b")
    assert first.checkpoint == Path("ck/pack-1.a.msgpack") and first.param_files == files[:2]
    assert second.checkpoint == Path("ck/pack-1.b.msgpack") and second.param_files == files[2:]
    assert first.n_rows == second.n_rows == 30, "the halves compile the whole pack's program"
    assert whole.part(slice(0, 1), "a").checkpoint is not None
    assert PackOptions().part(slice(0, 1), "a") == PackOptions()


@pytest.mark.slow
def test_the_engine_reads_the_data_through_the_options_locations(tmp_path, monkeypatch):
    """No preloaded dataset to fall back on: the files are found only where the options say."""
    write_idx_dataset(
        tmp_path / "images" / "mnist",
        {"train": idx_split(30, side=28), "t10k": idx_split(7, side=28)},
    )
    monkeypatch.setattr(host_data, "_pools", {})  # nothing loaded in this process yet
    monkeypatch.setenv("DD_DATA_DIR", str(tmp_path / "wrong"))
    spec = parse_spec(
        {
            "name": "located",
            "data": {"name": "mnist", "n_train": 30, "n_test": 7},
            "model": {"name": "mlp", "width": 2},
            "train": {"epochs": 1, "eval_points": 1, "batch_size": "full"},
        }
    )
    (pack,) = make_packs(list(spec.trials), spec.resources)
    options = PackOptions(locations=Locations(data_dir=str(tmp_path / "images")))
    (rows,) = train_pack(list(pack.trials), pack.key, options)
    assert [r["epoch"] for r in rows] == [1] and rows[0]["test_error"] >= 0
