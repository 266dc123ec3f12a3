"""What several test files share: `python -m dd` in a fresh process, ending a process tree by
its ids, whether a GPU answers, and the tiny spec most tests sweep. Imported as ``helpers``
(pytest puts tests/ on sys.path for conftest.py)."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TINY_GAUSSIAN = {
    "name": "tiny",
    "data": {"name": "gaussian", "dim": 20, "n_train": 10, "n_test": 500},
    "model": {"name": "raw_features", "n_features": 1},
    "grid": {"model.n_features": [2, 5, 8, 12, 15, 20], "seed": {"range": [0, 4]}},
}


def dd_command(*args: str | Path) -> list[str]:
    """`python -m dd ARGS` with this interpreter: the venv's dd, and through PYTHONPATH
    (inherited by the process and its local Ray workers) the tree under test."""
    return [sys.executable, "-m", "dd", *map(str, args)]


def run_dd(
    *args: str | Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run dd to the end: text stdout and stderr captured, ``env`` on top of this process's
    environment, killed (and the test failed) after ``timeout`` seconds rather than hanging."""
    return subprocess.run(
        dd_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def start_dd(
    *args: str | Path, env: dict[str, str] | None = None, stderr: int = subprocess.PIPE
) -> subprocess.Popen:
    """Start dd in its own session, for a test that signals or kills it mid-run; end it with
    ``kill_tree`` so that its local Ray processes do not outlive the test."""
    return subprocess.Popen(
        dd_command(*args),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (children of children included)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it (listed first, so none is orphaned unseen)."""
    for p in [pid, *_descendants(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@functools.cache
def gpu_answers() -> bool:
    """Whether an NVIDIA GPU answers here (`nvidia-smi -L`): the Makefile's test for installing
    the CUDA build of JAX, so the tests expect what the install made of this machine. Asking
    JAX instead would claim the GPU for the pytest process."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    return subprocess.run([smi, "-L"], capture_output=True, timeout=60).returncode == 0


without_gpu = pytest.mark.skipif(
    gpu_answers(), reason="a GPU answers here; this test checks the path without one"
)
