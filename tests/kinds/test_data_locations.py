"""Settings read once on the driver reach the pack workers: the image files' folder and the
dataset cache travel with the packs (``dd.datasets.base.Locations``), and the trial limit goes
to the spec readers; no worker or spec reader looks at the environment."""

from __future__ import annotations

import copy

import pyarrow.parquet as pq
import pytest
import yaml

from dd.cli import main
from dd.datasets.base import Locations
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from dd.run.worker import run_pack
from dd.spec.errors import SpecError
from dd.spec.settings import Settings
from dd.store.sweep import SweepStore
from helpers import TINY_GAUSSIAN, idx_split, write_idx_dataset


def _locations(settings: Settings) -> Locations:
    return Locations(data_dir=settings.data_dir, cache_dir=settings.cache_dir)


def _run_one_pack(spec_mapping: dict, root, locations: Locations) -> list[dict]:
    spec = parse_spec(spec_mapping)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    run_pack(spec.name, str(root), pack, spec.resources, locations=locations)
    (path,) = SweepStore(root, spec.name).packs_dir.glob("*.parquet")
    return pq.read_table(path).to_pylist()


@pytest.mark.slow
def test_a_worker_finds_image_files_through_the_settings_not_its_environment(tmp_path, monkeypatch):
    write_idx_dataset(
        tmp_path / "images" / "mnist",
        {"train": idx_split(30, side=28), "t10k": idx_split(7, side=28)},
    )
    settings = Settings.load({"DD_DATA_DIR": str(tmp_path / "images")})
    monkeypatch.setenv("DD_DATA_DIR", str(tmp_path / "wrong"))  # the worker must not look
    rows = _run_one_pack(
        {
            "name": "located",
            "data": {"name": "mnist", "n_train": 30, "n_test": 7},
            "model": {"name": "raw_features", "n_features": 20},
            "grid": {"seed": [0, 1]},
        },
        tmp_path / "results",
        _locations(settings),
    )
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert {r["data_data_dir"] for r in rows} == {None}, "the trial's data_dir stays unset"


@pytest.mark.slow
def test_a_pack_run_caches_generated_data_where_the_settings_say(tmp_path, monkeypatch):
    settings = Settings.load({"DD_CACHE_DIR": str(tmp_path / "cache")})
    monkeypatch.setenv("DD_CACHE_DIR", str(tmp_path / "wrong"))
    rows = _run_one_pack(
        {
            "name": "cached",  # a generator seed of its own: not already cached in this process
            "data": {"name": "mnist1d", "n_train": 20, "train_pool": 20, "n_test": 10}
            | {"generator_seed": 9177},
            "model": {"name": "raw_features", "n_features": 8},
        },
        tmp_path / "results",
        _locations(settings),
    )
    assert len(rows) == 1
    assert list((tmp_path / "cache").glob("mnist1d-*.npz")), "the settings' cache folder"
    assert not (tmp_path / "wrong").exists()


def test_the_trial_limit_set_through_the_settings_refuses_a_grid(monkeypatch):
    mapping = copy.deepcopy(TINY_GAUSSIAN)  # 24 grid points
    limit = Settings.load({"DD_MAX_TRIALS": "23"}).max_trials
    with pytest.raises(SpecError, match="^grid: 24 grid points exceed the limit of 23"):
        parse_spec(copy.deepcopy(mapping), max_trials=limit)
    monkeypatch.setenv("DD_MAX_TRIALS", "23")  # library use: the documented default holds
    assert len(parse_spec(copy.deepcopy(mapping)).trials) == 24


def test_the_cli_reads_the_trial_limit_once_and_refuses_a_grid(tmp_path, monkeypatch, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_GAUSSIAN))
    monkeypatch.setenv("DD_MAX_TRIALS", "23")
    assert main(["sweep", str(path), "--dry-run", "--results", str(tmp_path / "r")]) == 2
    assert "24 grid points exceed the limit of 23" in capsys.readouterr().err
    monkeypatch.setenv("DD_MAX_TRIALS", "24")
    assert main(["sweep", str(path), "--dry-run", "--results", str(tmp_path / "r")]) == 0
