"""A warm local Ray instance that outlives the command: ``dd up`` starts it, ``dd down`` stops it.

Without it every ``dd sweep`` starts a local Ray instance, a pack worker and its compiles from
nothing, and loses them when it exits. ``dd up`` starts ``ray start --head`` on 127.0.0.1 and
writes a small state file (``state_path``: ``$DD_WARM_STATE``, else
``~/.cache/dd/warm/<host>.json``); a sweep without an address that finds the file joins that
instance (``dd.run.cluster``) in the ``dd-warm`` namespace. Its pack workers are detached
actors: a ``Registry`` (a detached named actor) keeps the idle ones by kind between commands
(``dd.run.pool``), and stops those idle longer than ``dd up --idle``.

A state file whose instance is gone (a crash, a reboot: its GCS does not answer) is said in one
line, removed with what is left of the instance, and the command starts a fresh instance as
without ``dd up``. Clusters (``--address``, ``$RAY_ADDRESS``) never read the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dd.run.probe import probe_address
from dd.spec.errors import DDError, one_line

NAMESPACE = "dd-warm"
REGISTRY = "registry"
DEFAULT_IDLE_S = 30 * 60.0
PROBE_S = 2.0  # a GCS on this machine answers at once: longer is a dead or hung one
STOP_S = 2.0  # dd down: SIGTERM, then SIGKILL (Ray's GCS and raylet outlast a SIGTERM by seconds)
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


@dataclasses.dataclass(frozen=True)
class WarmState:
    """What ``dd up`` recorded: where to join the instance (``address``), how to find its
    processes (``session``, Ray's session name, and ``gcs_address``), when and where it
    started, and how long its workers may stay idle."""

    address: str
    gcs_address: str
    session: str
    started: str
    host: str
    idle_s: float = DEFAULT_IDLE_S

    def record(self) -> dict:
        return dataclasses.asdict(self)


def parse_duration(text: str) -> float:
    """Seconds of ``90``, ``90s``, ``30m`` or ``1.5h`` (> 0); a one-line DDError otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*", text)
    if not match or float(match[1]) <= 0:
        raise DDError(f"--idle: give a time > 0 such as 90s, 30m or 2h, got {text!r}")
    return float(match[1]) * UNITS[match[2]]


def state_path(warm_state: str | None) -> Path:
    """The state file: the setting's path, else ``~/.cache/dd/warm/<host>.json`` (one per
    machine, for a home folder that several machines share)."""
    if warm_state:
        return Path(warm_state).expanduser()
    return Path("~/.cache/dd/warm").expanduser() / f"{socket.gethostname()}.json"


def read_state(path: Path) -> WarmState | None:
    """The state in ``path``; None when there is none; ValueError when it is damaged."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return WarmState(**json.loads(text))
    except (TypeError, ValueError) as e:
        raise ValueError(f"unreadable state file {path} ({one_line(e)})") from None


def find(path: Path, say: Callable[[str], None]) -> WarmState | None:
    """The warm instance of this machine recorded in ``path`` when it answers; None when there
    is none, or it is another machine's. One that is gone is said, and removed with what is
    left of its processes: the caller starts a fresh instance."""
    try:
        state = read_state(path)
    except ValueError as e:
        path.unlink(missing_ok=True)
        say(f"dd: {e}: removed; starting a fresh local Ray instance (dd up starts a warm one)")
        return None
    if state is None or state.host != socket.gethostname():
        return None
    try:
        probe_address(state.address, PROBE_S)
    except DDError as e:
        stop_processes(instance_processes(state))
        path.unlink(missing_ok=True)
        reason = str(e).split(": ", 1)[-1]
        say(
            f"dd: the warm instance started by dd up at {state.started} is gone ({reason}); "
            "starting a fresh local Ray instance (dd up starts a warm one again)"
        )
        return None
    return state


def using(state: WarmState) -> str:
    """The line a command that joins the warm instance says."""
    return (
        f"dd: using the warm instance started by dd up at {state.started} "
        f"({state.address}; dd down stops it)"
    )


def instance_processes(state: WarmState) -> list[int]:
    """Every process of this machine that belongs to the instance: its command line names its
    session (Ray's GCS, raylet, agents, workers) or its GCS address."""
    marks = [m for m in (state.session, state.gcs_address) if m]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(re.search(re.escape(m) + r"(?!\d)", cmdline) for m in marks):
            found.append(int(entry.name))
    return found


def stop_processes(pids: list[int], wait_s: float = STOP_S) -> None:
    """SIGTERM ``pids``, then SIGKILL those still there after ``wait_s`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (wait_s if sig == signal.SIGTERM else 5.0)
        while (pids := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone but for its parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def up(
    warm_state: str | None, *, idle_s: float, cpus: int | None, say: Callable[[str], None]
) -> WarmState:
    """Start the warm instance (``ray start --head`` on 127.0.0.1, its ``Registry``) and write
    its state file; the running one when it is already up."""
    path = state_path(warm_state)
    if (state := find(path, say)) is not None:
        say(f"dd: the warm instance started by dd up at {state.started} is already up")
        return state
    port = _free_port()
    command = [sys.executable, "-c", "from ray.scripts.scripts import main; main()", "start"]
    command += ["--head", "--node-ip-address=127.0.0.1", f"--port={port}"]
    command += ["--include-dashboard=false", "--disable-usage-stats"]
    if cpus is not None:
        command.append(f"--num-cpus={cpus}")
    # a loopback instance of this user: no token (Ray would turn one on for a head it finds a
    # token file for, which drivers without $RAY_AUTH_MODE could not join)
    env = {"RAY_AUTH_MODE": "disabled", **os.environ}
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise DDError(f"dd up: ray start failed (exit {done.returncode}): {lines[-1]}")
    import ray

    address = f"127.0.0.1:{port}"
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level="ERROR")
        registry = start_registry(idle_s)
        ray.get(registry.count.remote())
        context = ray.get_runtime_context()
        state = WarmState(
            address=address,
            gcs_address=context.gcs_address,
            session=context.get_session_name(),
            started=started,
            host=socket.gethostname(),
            idle_s=idle_s,
        )
    except Exception as e:  # the instance started but does not serve: none of it is left
        ray.shutdown()
        stop_processes(instance_processes(WarmState(address, f":{port}", "", started, "")))
        raise DDError(f"dd up: the instance at {address} did not start ({one_line(e)})") from None
    ray.shutdown()
    from dd.store.paths import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(state.record()).encode())
    say(
        f"dd: warm instance up at {address} (idle workers stop after {idle_s:g} s); "
        f"sweeps without --address use it until dd down; state in {path}"
    )
    return state


def down(warm_state: str | None, say: Callable[[str], None]) -> bool:
    """Stop the warm instance (every process of it) and remove its state file; whether one
    was up."""
    path = state_path(warm_state)
    try:
        state = read_state(path)
    except ValueError as e:
        path.unlink(missing_ok=True)
        say(f"dd: {e}: removed")
        return False
    if state is None or state.host != socket.gethostname():
        say("dd: no warm instance is up on this machine")
        return False
    pids = instance_processes(state)
    stop_processes(pids)
    path.unlink(missing_ok=True)
    say(
        f"dd: stopped the warm instance started by dd up at {state.started} ({len(pids)} processes)"
    )
    return True


class Registry:
    """The warm instance's idle pack workers by kind (``dd.run.pool.WorkerPool`` on this
    instance), kept between commands; a detached named actor. Those idle longer than
    ``idle_s`` are killed, so that their reservations and memory free up."""

    def __init__(self, idle_s: float):
        self.idle_s = idle_s
        self.lock = threading.Lock()
        self.idle: dict[str, list] = {}  # kind -> [(worker, idle since)]
        threading.Thread(target=self._reap, daemon=True).start()

    def take(self, kind: str, n: int) -> list:
        """Up to ``n`` idle workers of ``kind``; idle ones of other kinds, and those beyond
        ``n``, are killed (as ``WorkerPool.take`` does)."""
        import ray

        with self.lock:
            warm = [w for w, _ in self.idle.pop(kind, [])]
            others = [w for ws in self.idle.values() for w, _ in ws] + warm[n:]
            self.idle.clear()
        for worker in others:
            ray.kill(worker)
        return warm[:n]

    def give_back(self, kind: str, workers: list) -> None:
        with self.lock:
            self.idle.setdefault(kind, []).extend((w, time.monotonic()) for w in workers)

    def has(self, kind: str) -> bool:
        with self.lock:
            return bool(self.idle.get(kind))

    def count(self) -> int:
        with self.lock:
            return sum(len(ws) for ws in self.idle.values())

    def release(self) -> None:
        import ray

        with self.lock:
            workers = [w for ws in self.idle.values() for w, _ in ws]
            self.idle.clear()
        for worker in workers:
            ray.kill(worker)

    def _reap(self) -> None:
        import ray

        while True:
            time.sleep(min(self.idle_s / 4, 10.0))
            now, expired = time.monotonic(), []
            with self.lock:
                for kind, entries in list(self.idle.items()):
                    expired += [w for w, since in entries if now - since >= self.idle_s]
                    kept = [(w, s) for w, s in entries if now - s < self.idle_s]
                    if kept:
                        self.idle[kind] = kept
                    else:
                        del self.idle[kind]
            for worker in expired:
                ray.kill(worker)


def start_registry(idle_s: float):
    """The warm instance's ``Registry`` (started, or the one already there)."""
    import ray

    options = {"name": REGISTRY, "namespace": NAMESPACE, "lifetime": "detached"}
    options |= {"num_cpus": 0, "get_if_exists": True}
    return ray.remote(Registry).options(**options).remote(idle_s)


def registry():
    """The ``Registry`` of the Ray instance this process joined, when it is the warm one."""
    import ray

    if not on_warm_instance():
        return None
    try:
        return ray.get_actor(REGISTRY, namespace=NAMESPACE)
    except ValueError:
        return None


def on_warm_instance() -> bool:
    """Whether this process joined the warm instance (its drivers use the ``dd-warm``
    namespace, which nothing else of dd does)."""
    import ray

    return ray.is_initialized() and ray.get_runtime_context().namespace == NAMESPACE
