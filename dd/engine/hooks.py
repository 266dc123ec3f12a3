"""Named points of the pack worker where registered callbacks run: the one seam through which
tests install faults (docs/faults.md), in place of switches inside the engine.

Nothing is registered in normal use. A callback is ``callback(**info)``; it may raise (an
injected fault) or sleep (to hold a pack mid-way). The points and what they pass:

- ``before_compile(trials)``: a training pack is about to compile; raising ``OutOfMemory``
  here is a pack that does not fit, and the worker splits it.
- ``after_checkpoint(path, epoch, resumed_from)``: a pack's checkpoint is written;
  ``resumed_from`` is the epoch the pack started from (0: from scratch).
- ``after_evaluation(store, pack_id, epoch)``: a training pack's rows so far and progress
  are written (``dd.run.worker.LiveRows``); a test looks at a running pack here.
- ``accelerator_missing(resources, platform)``: a pack given GPUs found JAX without a GPU
  backend; a callback returning True lets it run on ``platform`` (fake Ray GPUs on a CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

POINTS = ("before_compile", "after_checkpoint", "after_evaluation", "accelerator_missing")
_callbacks: dict[str, list[Callable[..., Any]]] = {point: [] for point in POINTS}


def add(point: str, callback: Callable[..., Any]) -> Callable[[], None]:
    """Run ``callback`` at ``point`` from now on, in this process; returns its remover."""
    if point not in _callbacks:
        raise ValueError(f"hook point {point!r}: must be one of {', '.join(POINTS)}")
    _callbacks[point].append(callback)
    return lambda: _callbacks[point].remove(callback)


def call(point: str, **info: Any) -> list[Any]:
    """Run the callbacks of ``point`` in the order they were added; their return values."""
    return [callback(**info) for callback in list(_callbacks[point])]
