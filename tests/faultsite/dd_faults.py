"""The faults dd's tests inject, installed through ``dd.engine.hooks`` (docs/faults.md).

``install`` puts them in this process. ``env`` gives a subprocess's environment that puts
them in every Python process it starts: this folder leads PYTHONPATH, so its
``sitecustomize`` runs at each interpreter's start (Ray's workers inherit the variables) and
installs the faults that ``$DD_TEST_FAULTS`` names.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

FAULTS_VARIABLE = "DD_TEST_FAULTS"
FOLDER = Path(__file__).resolve().parent


def install(
    *,
    hold_after_checkpoint: float = 0,
    oom_above: int = 0,
    gpus_on_cpu: bool = False,
    hang_before_compile: float = 0,
    fail_after_evaluation: bool = False,
    exit_after_evaluation: bool = False,
) -> Callable[[], None]:
    """Install the faults in this process; returns what removes them.

    ``hold_after_checkpoint``: a pack that started from scratch sleeps this many seconds after
    its first checkpoint, so a test can kill it mid-pack however fast it trains.
    ``oom_above``: a pack of more replicas runs out of memory (``OutOfMemory``).
    ``gpus_on_cpu``: a pack given (fake Ray) GPUs trains on the CPU instead of refusing.
    ``hang_before_compile``: a training pack hangs this many seconds before it compiles (user
    code that never returns), for the stall watchdog.
    ``fail_after_evaluation``: a training pack fails at its first evaluation point, once its
    rows so far are written (a pack that dies mid-way, leaving a partial file).
    ``exit_after_evaluation``: the worker process running a training pack exits at its first
    evaluation point (a worker that dies: Ray says so in its own messages).
    """
    from dd.engine import hooks

    removers = []
    if hold_after_checkpoint:
        held = set()

        def hold(path, epoch, resumed_from) -> None:
            if resumed_from == 0 and path not in held:
                held.add(path)
                time.sleep(hold_after_checkpoint)

        removers.append(hooks.add("after_checkpoint", hold))
    if oom_above:

        def out_of_memory(trials) -> None:
            if len(trials) > oom_above:
                from dd.engine.memory import OutOfMemory

                raise OutOfMemory(
                    f"RESOURCE_EXHAUSTED: {len(trials)} replicas (injected above {oom_above})"
                )

        removers.append(hooks.add("before_compile", out_of_memory))
    if hang_before_compile:
        removers.append(hooks.add("before_compile", lambda trials: time.sleep(hang_before_compile)))
    if fail_after_evaluation:

        def fail(store, pack_id, epoch) -> None:
            raise RuntimeError(f"injected failure of pack {pack_id} at epoch {epoch}")

        removers.append(hooks.add("after_evaluation", fail))
    if exit_after_evaluation:
        removers.append(hooks.add("after_evaluation", lambda store, pack_id, epoch: os._exit(3)))
    if gpus_on_cpu:
        removers.append(hooks.add("accelerator_missing", lambda resources, platform: True))

    def remove() -> None:
        for remover in removers:
            remover()

    return remove


def env(**faults) -> dict[str, str]:
    """This process's environment, plus what installs ``faults`` (``install``'s keywords)
    in every Python process started with it."""
    path = [str(FOLDER)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        FAULTS_VARIABLE: json.dumps(faults),
    }
