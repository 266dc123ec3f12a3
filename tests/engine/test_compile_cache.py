"""The persistent compilation cache of pack workers, and the worker settings for GPU sharing."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from dd.plan.sweep import Resources
from dd.run.worker import worker_env
from dd.spec.settings import Settings
from dd.store.sweep import SweepStore
from helpers import run_dd

TINY_MLP = {
    "name": "cached",
    "data": {"name": "digits", "n_train": 200},
    "model": {"name": "mlp", "width": 8},
    "train": {"optimizer": "sgd", "lr": 0.05, "batch_size": 50, "epochs": 4, "eval_points": 2},
    "grid": {"model.width": [8, 16], "seed": [0, 1]},
}


def _cache_files(folder) -> dict[str, int]:
    """Entry -> modification time: a program compiled again would be written again."""
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()
    }


@pytest.mark.ray
def test_a_second_sweep_loads_every_program_from_the_cache_and_gets_the_same_numbers(
    write_spec, tmp_path
):
    spec = write_spec(TINY_MLP)
    cache = tmp_path / "jax-cache"
    tables = []
    for run in ("first", "second"):
        done = run_dd(
            "sweep",
            spec,
            "--results",
            tmp_path / run,
            "--compile-cache",
            cache,
            "--no-curves",
            "--quiet",
            env={"DD_COMPILE_CACHE": "off"},
        )  # the flag wins over the variable
        assert done.returncode == 0, done.stderr
        if run == "first":
            compiled = _cache_files(cache)
            assert compiled, "the first sweep's workers wrote their programs to the cache"
        tables.append(
            SweepStore(tmp_path / run, "cached")
            .read_results()
            .sort_by([("trial_id", "ascending"), ("step", "ascending")])
        )
    assert _cache_files(cache) == compiled, "nothing new compiled: every program was loaded"
    for metric in ("train_loss", "test_loss", "test_error"):
        assert pc.all(pc.equal(tables[0][metric], tables[1][metric])).as_py(), metric


def test_compile_cache_setting_flag_then_environment_then_default():
    def cache(environ: dict, flag: str | None = None) -> str | None:
        return Settings.load(environ, compile_cache=flag).compile_cache

    assert cache({}) == "~/.cache/dd/jax"
    assert cache({"DD_COMPILE_CACHE": "/shared/jax"}) == "/shared/jax"
    assert cache({"DD_COMPILE_CACHE": "/shared/jax"}, "/mine") == "/mine"
    assert cache({"DD_COMPILE_CACHE": "/shared/jax"}, "off") is None
    assert cache({"DD_COMPILE_CACHE": "off"}) is None


def test_packs_sharing_a_gpu_get_their_share_of_its_memory():
    assert worker_env(Resources(gpus=0.25)) == {
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.225",
    }
    assert worker_env(Resources(gpus=1.0, packs_in_flight=1)) == {}
    assert worker_env(Resources(gpus=1.0)) == {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.900"}, (
        "one worker's packs in flight share its GPU's memory"
    )
    assert worker_env(Resources(gpus=0.0)) == {}
