"""Warm pack workers between the sweeps of one process (``dd.run.pool``): reused with their
compiled programs by a second ``dd.api.sweep``, kept per Ray instance and per kind."""

from __future__ import annotations

import copy

import pytest

from dd.plan.sweep import Resources
from dd.run import pool
from dd.spec.settings import Settings

SPEC = {
    "name": "warm",
    "data": {"name": "mnist1d", "n_train": 100, "train_pool": 200, "n_test": 100},
    "model": {"name": "mlp", "width": 8},
    "train": {"batch_size": 50, "epochs": 2, "eval_points": 1},
    "grid": {"seed": [0, 1]},
    "resources": {"cpus": 1},
}


def test_packs_in_flight_default_per_backend_and_its_bounds():
    assert Resources().packs_per_worker() == 1
    assert Resources(gpus=1).packs_per_worker() == 2, "one worker per GPU, two packs in it"
    assert Resources(gpus=0.25).packs_per_worker() == 1, "a GPU share keeps one pack"
    assert Resources(gpus=1, packs_in_flight=4).packs_per_worker() == 4
    from dd.plan.sweep import parse_spec
    from dd.spec.errors import SpecError

    with pytest.raises(SpecError, match=r"resources.packs_in_flight.*must be >= 0"):
        parse_spec({**copy.deepcopy(SPEC), "resources": {"packs_in_flight": -1}})


def test_the_pool_keeps_workers_per_kind_and_forgets_another_ray_instance(monkeypatch):
    import ray

    killed, started, instance = [], [], ["one"]
    monkeypatch.setattr(ray, "kill", killed.append)
    monkeypatch.setattr(pool, "_instance", lambda: instance[0])
    monkeypatch.setattr(pool.WorkerKind, "start", lambda kind: started.append(kind) or "fresh")
    cpu = pool.WorkerKind.of(Resources(), Settings())
    gpu = pool.WorkerKind.of(Resources(gpus=1), Settings())
    assert gpu.packs_in_flight == 2 and cpu != gpu
    workers = pool.WorkerPool()
    workers.give_back(cpu, ["a", "b", "c"])
    assert workers.take(cpu, 2) == ["a", "b"] and killed == ["c"], "extra warm ones go"
    assert started == []
    workers.give_back(cpu, ["a"])
    assert workers.take(gpu, 1) == ["fresh"] and killed == ["c", "a"], "another kind frees up"
    workers.give_back(gpu, ["g"])
    instance[0] = "two"  # ray.shutdown and init again: the old workers went with Ray
    assert workers.idle() == 0 and workers.take(gpu, 1) == ["fresh"] and killed == ["c", "a"]
    workers.give_back(gpu, ["h"])
    workers.release()
    assert killed[-1] == "h" and workers.idle() == 0


@pytest.mark.slow
def test_a_second_api_sweep_reuses_the_warm_worker_and_compiles_nothing(ray_local, tmp_path):
    from dd import api

    first = api.sweep(copy.deepcopy(SPEC), tmp_path / "a", quiet=True, compile_cache="off")
    second = api.sweep(copy.deepcopy(SPEC), tmp_path / "b", quiet=True, compile_cache="off")
    (one,), (two,) = first.report.placements, second.report.placements
    assert second.report.trials_run == 2
    assert two["pid"] == one["pid"], "the same worker process ran both packs"
    assert one["profile"]["programs_compiled"] > 0
    assert two["profile"]["programs_compiled"] == 0, "its compiled programs were warm"
    assert pool.POOL.idle() == 1
    api.release_workers()
    assert pool.POOL.idle() == 0
