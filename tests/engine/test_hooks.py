"""The seam tests inject faults through (``dd.engine.hooks``, docs/faults.md): the worker calls each
point, and ``tests/faultsite`` installs the faults in this process or in every process a test
starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dd.engine import hooks
from dd.engine.options import PackOptions
from dd.engine.train import train_pack, train_splitting
from dd.plan.packs import make_packs
from dd.plan.sweep import Resources, parse_spec
from dd.run.worker import AcceleratorError, check_accelerator
from faultsite.dd_faults import env as faults_env, install

MLP_SPEC = {
    "name": "hooked",
    "data": {"name": "mnist1d", "n_train": 100, "train_pool": 200, "n_test": 100},
    "model": {"name": "mlp", "width": 8},
    "train": {"optimizer": "sgd", "lr": 0.05, "batch_size": 50, "epochs": 4, "eval_points": 2},
    "grid": {"seed": [0, 1]},
}


def _pack():
    (pack,) = make_packs(list(parse_spec(MLP_SPEC).trials), Resources())
    return list(pack.trials), pack.key


def test_a_hook_runs_until_removed_and_points_are_checked():
    seen = []
    remove = hooks.add("before_compile", lambda trials: seen.append(len(trials)))
    try:
        assert hooks.call("before_compile", trials=[1, 2]) == [None] and seen == [2]
    finally:
        remove()
    hooks.call("before_compile", trials=[1])
    assert seen == [2]
    with pytest.raises(ValueError, match="hook point 'nosuch': must be one of before_compile"):
        hooks.add("nosuch", print)


@pytest.mark.slow
def test_the_engine_calls_after_checkpoint_with_where_the_pack_started(tmp_path):
    trials, key = _pack()
    checkpoint = tmp_path / "pack.msgpack"
    calls = []
    remove = hooks.add("after_checkpoint", lambda **info: calls.append(info))
    try:
        train_pack(trials, key, PackOptions(checkpoint=checkpoint, checkpoint_every=1))
        assert calls == [{"path": checkpoint, "epoch": e, "resumed_from": 0} for e in (1, 2, 3)], (
            "one call per checkpoint, epochs 1-3 (the last epoch ends the pack instead)"
        )
        calls.clear()
        checkpoint.unlink()
        train_pack(trials, key, PackOptions(checkpoint=checkpoint, checkpoint_every=2))
        calls.clear()
        train_pack(
            trials, key, PackOptions(checkpoint=checkpoint, checkpoint_every=1)
        )  # resumes at 2
        assert calls == [{"path": checkpoint, "epoch": 3, "resumed_from": 2}]
    finally:
        remove()


@pytest.mark.slow
def test_an_injected_out_of_memory_splits_the_pack_down_to_one_replica():
    trials, key = _pack()
    remove = install(oom_above=1)
    try:
        rows, splits = train_splitting(trials, key, PackOptions())
    finally:
        remove()
    assert splits == 1 and len(rows) == 2 and all(len(r) == 2 for r in rows)


def test_a_gpu_pack_on_a_cpu_is_refused_unless_a_test_fakes_the_gpu():
    import jax

    if jax.default_backend() == "gpu":
        pytest.skip("this worker has a GPU: nothing to refuse")
    with pytest.raises(AcceleratorError, match="resources.gpus is 1 but JAX"):
        check_accelerator(Resources(gpus=1.0))
    remove = install(gpus_on_cpu=True)
    try:
        check_accelerator(Resources(gpus=1.0))
    finally:
        remove()
    with pytest.raises(AcceleratorError):
        check_accelerator(Resources(gpus=1.0))


def test_the_fault_site_installs_faults_in_every_process_started_with_its_environment():
    count = "from dd.engine import hooks; print(len(hooks._callbacks['after_checkpoint']))"
    for env, expected in ((faults_env(), "0"), (faults_env(hold_after_checkpoint=5), "1")):
        done = subprocess.run(
            [sys.executable, "-c", count], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected
