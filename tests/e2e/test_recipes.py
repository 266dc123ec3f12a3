"""The cluster recipes in docs/recipes: they parse, name shipped specs and real dd options, and
the SLURM script runs a sweep end to end here, with stand-ins for srun and scontrol."""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from dd.plan.sweep import load_spec
from dd.spec.ids import trial_id
from dd.store.sweep import SweepStore
from helpers import TINY_GAUSSIAN, run_dd

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "docs" / "recipes"
CLUSTER = RECIPES / "ray-cluster-gpu.yaml"
RAYJOB = RECIPES / "rayjob.yaml"
SLURM = RECIPES / "slurm.sbatch"
BIN = Path(sys.executable).parent

# `dd SUB ARG ...` (or the SLURM script's `"$DD" SUB ARG ...`) up to the end of its line;
# prose such as "the same `dd sweep` on" has no argument right after the subcommand.
DD_COMMAND = re.compile(
    r'(?:\bdd|"\$DD")\s+(?P<sub>sweep|status|curves|query)\s+'
    r"(?P<arg>\S+)(?P<rest>[^\n]*)"
)


def dd_commands(path: Path) -> list[re.Match]:
    return list(DD_COMMAND.finditer(path.read_text().replace("\\\n", " ")))


@functools.cache
def dd_options(sub: str) -> set[str]:
    done = run_dd(sub, "--help")
    assert done.returncode == 0, done.stderr
    return set(re.findall(r"--[a-z][a-z-]*", done.stdout))


def spec_arg(command: re.Match) -> str:
    return command["arg"].strip("'\"")


def test_every_dd_option_in_the_recipes_is_one_dd_has():
    commands = [c for path in (CLUSTER, RAYJOB, SLURM) for c in dd_commands(path)]
    assert {c["sub"] for c in commands} >= {"sweep"}
    for command in commands:
        unknown = set(re.findall(r"(?<!\S)--[a-z][a-z-]*", command["rest"]))
        unknown -= dd_options(command["sub"])
        assert not unknown, (command.group(0), unknown)


def test_the_cluster_launcher_config_passes_rays_schema_and_runs_a_shipped_spec():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(CLUSTER.read_text())
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` checks first
    workers = [
        t for name, t in config["available_node_types"].items() if name != config["head_node_type"]
    ]
    assert workers and all(t["max_workers"] > 0 for t in workers)
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}
    assert "." in config["file_mounts"].values(), "the checkout, with sweeps/, goes to the nodes"
    assert any("dd[gpu]" in c for c in config["setup_commands"])
    sweeps = [c for c in dd_commands(CLUSTER) if c["sub"] == "sweep"]
    assert sweeps, "the header shows the dd sweep command"
    for command in sweeps:
        assert (ROOT / spec_arg(command)).is_file(), command.group(0)
        assert "--address auto" in command["rest"], "without it dd starts a private Ray"


def test_the_rayjob_runs_a_shipped_spec_on_a_gpu_worker_group():
    job = yaml.safe_load(RAYJOB.read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    entrypoint = job["spec"]["entrypoint"]
    [command] = DD_COMMAND.finditer(entrypoint)
    assert command["sub"] == "sweep" and spec_arg(command).startswith("sweeps/")
    assert (ROOT / spec_arg(command)).is_file()
    assert re.search(r"--results s3://\S+", command["rest"])
    cluster = job["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    [group] = cluster["workerGroupSpecs"]
    worker = group["template"]["spec"]["containers"][0]
    assert int(worker["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert head["image"] == worker["image"], "driver and workers run the same dd"
    assert group["replicas"] >= 1 and job["spec"]["shutdownAfterJobFinishes"] is True


def test_the_slurm_script_is_valid_bash_and_defaults_to_a_shipped_spec():
    subprocess.run(["bash", "-n", str(SLURM)], check=True)
    default = re.search(r"^SPEC=\$\{SPEC:-(\S+)\}$", SLURM.read_text(), re.M)
    assert default and (ROOT / default[1]).is_file()


SRUN = """#!/bin/bash
# srun stand-in: log the call, drop srun's own options, run the command on this machine.
echo "$*" >> "$SRUN_LOG"
while (($#)); do
  case $1 in
    -w|-N|-n|--nodelist|--nodes|--ntasks) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
exec "$@"
"""

SCONTROL = """#!/bin/bash
# scontrol stand-in: a two-node allocation, both nodes this machine.
[[ $1 == show && $2 == hostnames && $3 == "node[1-2]" ]] || exit 1
printf '%s\\n' node1 node2
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def _processes_mentioning(*texts: str) -> list[int]:
    """Processes whose command line holds any of ``texts``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                raw = (proc / "cmdline").read_bytes()
                cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # the process ended while we looked
            if any(text in cmdline for text in texts):
                found.append(int(proc.name))
    return found


def _run_slurm_script(tmp_path: Path, spec: dict) -> tuple[subprocess.CompletedProcess, dict]:
    """Run docs/recipes/slurm.sbatch as SLURM would, on this machine: the finished job (its
    output as stdout), and what it did: srun calls, Ray sessions, nodes, processes left."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    # Ray's Unix socket paths must stay under 108 characters: a short directory in /tmp.
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SLURM_"))}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        SLURM_JOB_NODELIST="node[1-2]",
        SRUN_LOG=str(tmp_path / "srun.log"),
        SPEC=str(spec_path),
        RESULTS=str(tmp_path / "results"),
        DD=str(BIN / "dd"),
        RAY=str(BIN / "ray"),
        PORT=str(port),
        RAY_TMPDIR=str(ray_tmp),
    )
    log = tmp_path / "job.out"
    # Output to a file, not a pipe: Ray processes the script failed to stop would hold a pipe
    # open, and the test would hang instead of failing.
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", str(SLURM)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the script's trap stops its Ray
            proc.wait(timeout=60)
    # This job's Ray: processes under its temp dir, and the `ray start` steps naming its port.
    mine = (str(ray_tmp), f"--port={port}", f":{port} ")
    deadline = time.monotonic() + 15  # Ray's worker processes see their raylet go and exit
    while (left := _processes_mentioning(*mine)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:  # so that the next test starts clean
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    sessions = [p for p in (ray_tmp / "ray").glob("session_2*") if p.is_dir()]
    gcs_logs = "".join(
        p.read_text(errors="replace")
        for s in sessions
        for p in (s / "logs").glob("gcs_server*.out")
    )
    shutil.rmtree(ray_tmp, ignore_errors=True)
    return (
        subprocess.CompletedProcess(proc.args, proc.returncode, log.read_text()),
        {
            "left": left,
            "port_free": _port_is_free(port),
            "sessions": len(sessions),
            "gcs_logs": gcs_logs,
            "srun": (tmp_path / "srun.log").read_text().splitlines(),
            "results": tmp_path / "results",
            "spec": spec_path,
        },
    )


@pytest.mark.ray
def test_the_slurm_script_runs_a_sweep_on_a_two_node_ray_cluster_and_stops_it(tmp_path):
    spec = {**copy.deepcopy(TINY_GAUSSIAN), "name": "recipe_tiny"}
    done, job = _run_slurm_script(tmp_path, spec)
    assert done.returncode == 0, done.stdout[-4000:]
    assert not job["left"], f"Ray processes left: {job['left']}"
    assert job["port_free"], "the head's GCS port is still taken"
    assert any("-w node1" in c and " start --head " in c for c in job["srun"]), job["srun"]
    assert any("-w node2" in c and " start --address=" in c for c in job["srun"]), job["srun"]
    # One Ray session (the driver joined it, started none of its own) with both nodes in it.
    assert job["sessions"] == 1
    assert len(re.findall(r"Registering new node", job["gcs_logs"])) == 2
    store = SweepStore(job["results"], "recipe_tiny")
    assert list(store.packs_dir.glob("pack-*.parquet"))
    planned = {trial_id(t) for t in load_spec(job["spec"]).trials}
    assert len(planned) == 24 and store.stored_trial_ids() == planned
    assert "recipe_tiny: ran 24 trials" in done.stdout


@pytest.mark.ray
def test_the_slurm_script_stops_ray_when_the_sweep_fails(tmp_path):
    bad = {**copy.deepcopy(TINY_GAUSSIAN), "name": "recipe_bad", "resources": {"cpus": -1}}
    done, job = _run_slurm_script(tmp_path, bad)
    assert done.returncode == 2, done.stdout[-4000:]  # dd's exit code for a bad spec
    assert "resources.cpus" in done.stdout
    assert not job["left"] and job["port_free"]
