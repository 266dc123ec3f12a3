"""The warm local instance between commands (``dd.run.warm``): ``dd up`` starts it, CLI sweeps
reuse its pack workers and their compiled programs, ``dd down`` stops it, and a dead one is
noticed and replaced by a fresh instance."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import yaml

from dd.run import warm
from dd.spec.errors import DDError
from helpers import run_dd

SPEC = {
    "name": "warmcli",
    "data": {"name": "mnist1d", "n_train": 100, "train_pool": 200, "n_test": 100},
    "model": {"name": "mlp", "width": 8},
    "train": {"batch_size": 50, "epochs": 2, "eval_points": 1},
    "grid": {"seed": [0]},
    "resources": {"cpus": 1},
}


def test_idle_durations_read_seconds_minutes_and_hours():
    assert [warm.parse_duration(t) for t in ("90", "90s", "30m", "1.5h")] == [90, 90, 1800, 5400]
    for bad in ("", "0", "-1m", "5d", "m"):
        with pytest.raises(DDError, match="--idle"):
            warm.parse_duration(bad)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_state_file_whose_instance_is_gone_is_said_removed_and_not_used(tmp_path):
    path = tmp_path / "warm.json"
    state = warm.WarmState(
        address=f"127.0.0.1:{_closed_port()}",
        gcs_address="",
        session="session_dd_test_never_started",
        started="2026-01-01T00:00:00",
        host=socket.gethostname(),
        idle_s=60.0,
    )
    path.write_text(json.dumps(state.record()))
    said: list[str] = []
    assert warm.find(path, said.append) is None
    assert not path.exists()
    (line,) = said
    assert "is gone" in line and "2026-01-01T00:00:00" in line and "fresh" in line


def test_a_damaged_state_file_is_gone_too(tmp_path):
    path = tmp_path / "warm.json"
    path.write_text("{not json")
    said: list[str] = []
    assert warm.find(path, said.append) is None
    assert not path.exists() and len(said) == 1


def test_no_state_file_says_nothing(tmp_path):
    said: list[str] = []
    assert warm.find(tmp_path / "none.json", said.append) is None
    assert said == []


def test_another_machines_state_file_is_left_alone(tmp_path):
    path = tmp_path / "warm.json"
    state = warm.WarmState(
        address="127.0.0.1:1",
        gcs_address="",
        session="s",
        started="t",
        host="another-machine",
        idle_s=60.0,
    )
    path.write_text(json.dumps(state.record()))
    said: list[str] = []
    assert warm.find(path, said.append) is None
    assert path.exists() and said == []


def test_only_a_run_without_an_address_looks_for_the_warm_instance(tmp_path):
    from dd.run.cluster import ray_options
    from dd.spec.settings import Settings

    state = str(tmp_path / "warm.json")
    local = ray_options(Settings(warm_state=state), quiet=True, debug=False)
    joined = ray_options(
        Settings(warm_state=state, address="10.0.0.1:6379"), quiet=True, debug=False
    )
    assert local["warm"] == tmp_path / "warm.json" and local["address"] == "local"
    assert joined["warm"] is None, "a cluster's run never reads the state file"


def test_the_state_file_defaults_to_one_per_machine_under_the_cache():
    path = warm.state_path(None)
    assert path.parent == Path("~/.cache/dd/warm").expanduser()
    assert path.name == f"{socket.gethostname()}.json"


def _instance_pids(state_path: Path) -> list[int]:
    return warm.instance_processes(warm.read_state(state_path))


def _kill_instance(state_path: Path, session: str | None) -> None:
    """Whatever is left of the test's instance, by its session name (the finally of a test)."""
    if session is None:
        return
    state = warm.WarmState(address="", gcs_address="", session=session, started="", host="")
    for pid in warm.instance_processes(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _profile(results: Path, name: str) -> dict:
    """The sweep's one pack profile (``<sweep>/profiles/pack-<id>.json``)."""
    from dd.store.sweep import SweepStore

    (profile,) = SweepStore(results, name).profiles()
    return profile


@pytest.mark.slow
@pytest.mark.ray
def test_dd_up_keeps_the_worker_warm_between_two_cli_sweeps_and_dd_down_stops_it(tmp_path):
    env = {"DD_WARM_STATE": str(tmp_path / "warm.json"), "DD_COMPILE_CACHE": "off"}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    session = None
    try:
        up = run_dd("up", "--cpus", "2", "--idle", "10m", env=env, timeout=180)
        assert up.returncode == 0, up.stderr
        session = warm.read_state(tmp_path / "warm.json").session
        again = run_dd("up", env=env, timeout=60)
        assert again.returncode == 0 and "already up" in again.stderr, again.stderr
        runs = []
        for seed, results in ((0, "a"), (1, "b")):
            done = run_dd(
                "sweep", spec, "--results", tmp_path / results, "--set", f"grid.seed=[{seed}]",
                "--no-curves", env=env, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert "using the warm instance started by dd up" in done.stderr
            runs.append(_profile(tmp_path / results, "warmcli"))
        first, second = runs
        assert second["worker_pid"] == first["worker_pid"], "the same worker ran both sweeps"
        assert first["programs_compiled"] > 0
        assert second["programs_compiled"] == 0, "its compiled programs were warm"
        assert _instance_pids(tmp_path / "warm.json"), "the instance outlives the commands"
        down = run_dd("down", env=env, timeout=120)
        assert down.returncode == 0, down.stderr
        assert not (tmp_path / "warm.json").exists()
        state = warm.WarmState(address="", gcs_address="", session=session, started="", host="")
        assert warm.instance_processes(state) == [], "dd down leaves no process of the instance"
    finally:
        _kill_instance(tmp_path / "warm.json", session)


@pytest.mark.slow
@pytest.mark.ray
def test_a_killed_instance_is_said_and_the_next_sweep_starts_fresh(tmp_path):
    env = {"DD_WARM_STATE": str(tmp_path / "warm.json"), "DD_COMPILE_CACHE": "off"}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    session = None
    try:
        up = run_dd("up", "--cpus", "1", env=env, timeout=180)
        assert up.returncode == 0, up.stderr
        session = warm.read_state(tmp_path / "warm.json").session
        for pid in _instance_pids(tmp_path / "warm.json"):  # the instance crashes
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _instance_pids(tmp_path / "warm.json") and time.monotonic() < deadline:
            time.sleep(0.2)
        done = run_dd(
            "sweep", spec, "--results", tmp_path / "r", "--no-curves", env=env, timeout=300
        )
        assert done.returncode == 0, done.stderr
        gone = [line for line in done.stderr.splitlines() if "is gone" in line]
        assert len(gone) == 1 and "fresh" in gone[0], done.stderr
        assert "using the warm instance" not in done.stderr
        assert not (tmp_path / "warm.json").exists()
    finally:
        _kill_instance(tmp_path / "warm.json", session)


def _registry(monkeypatch, idle_s: float):
    """A ``Registry`` as a plain object (not an actor), its kills recorded."""
    import ray

    killed: list[str] = []
    monkeypatch.setattr(ray, "kill", killed.append)
    return warm.Registry(idle_s), killed


def test_the_registry_hands_back_workers_of_a_kind_and_kills_other_kinds(monkeypatch):
    registry, killed = _registry(monkeypatch, 3600.0)
    registry.give_back("cpu", ["a", "b"])
    registry.give_back("gpu", ["g"])
    assert registry.count() == 3 and registry.has("cpu")
    assert registry.take("cpu", 1) == ["a"]
    assert sorted(killed) == ["b", "g"], "beyond n and other kinds free their reservations"
    assert registry.count() == 0
    registry.give_back("cpu", ["c"])
    registry.release()
    assert killed[-1] == "c" and registry.count() == 0


def test_the_registry_stops_workers_idle_longer_than_its_idle_time(monkeypatch):
    registry, killed = _registry(monkeypatch, 0.2)
    registry.give_back("cpu", ["a"])
    deadline = time.monotonic() + 30
    while not killed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert killed == ["a"] and registry.count() == 0
