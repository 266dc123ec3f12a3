"""Where a pack's time went: seconds per phase, programs compiled, bytes moved.

A ``PackProfile`` is filled while a pack runs and stored with its run record, so a run on any
device can be read afterwards (``dd status SWEEP --profile``). Phases are wall-clock seconds:

    start     the worker's start, or its reuse (measured by the worker)
    data      loading the dataset and moving it to the device
    compile   tracing, lowering and compiling programs, or loading them from the persistent
              compilation cache, as ``jax.monitoring`` reports them (taken out of the phase
              during which they happened)
    train     the pack's programs running: drawing, initialising, training, and the on-device
              measurement at each evaluation point (it runs inside the training program)
    evaluate  moving each evaluation point's metrics to the host and turning them into rows
    write     writing rows, checkpoints and parameters (measured by the worker)

``programs_compiled`` counts the XLA programs a pack obtained (compiled, or loaded from the
persistent cache: ``programs_from_cache`` of them); a program already compiled in the worker
costs nothing and is not counted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

PHASES = ("start", "data", "compile", "train", "evaluate", "write")
_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_PROGRAM_EVENT = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


@dataclasses.dataclass
class PackProfile:
    """One pack's profile (see the module docstring)."""

    phases: dict[str, float] = dataclasses.field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    programs_compiled: int = 0
    programs_from_cache: int = 0
    bytes_to_device: int = 0
    bytes_to_host: int = 0
    transfers_to_host: int = 0
    compile_seconds: float = 0.0  # running total, moved into phases["compile"] by ``phase``

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a block as phase ``name``; compiling inside it counts as ``compile``."""
        with _listening(self):
            start, compiled = time.perf_counter(), self.compile_seconds
            try:
                yield
            finally:
                spent = self.compile_seconds - compiled
                self.phases["compile"] += spent
                self.phases[name] += time.perf_counter() - start - spent

    def to_device(self, tree: Any) -> Any:
        """``tree`` of host arrays placed on the device, counted."""
        self.bytes_to_device += _nbytes(tree)
        return jax.device_put(tree)

    def placed(self, tree: Any) -> Any:
        """``tree``, already placed on the device (a dataset), counted."""
        self.bytes_to_device += _nbytes(tree)
        return tree

    def to_host(self, tree: Any) -> Any:
        """``tree`` of device arrays brought to the host in one transfer, counted."""
        host = jax.device_get(tree)
        self.transfers_to_host += 1
        self.bytes_to_host += _nbytes(host)
        return host

    def record(self) -> dict[str, Any]:
        """The profile as stored in the run record (plain JSON values)."""
        return {
            "programs_compiled": self.programs_compiled,
            "programs_from_cache": self.programs_from_cache,
            "phases": {k: round(v, 6) for k, v in self.phases.items()},
            "bytes_to_device": self.bytes_to_device,
            "bytes_to_host": self.bytes_to_host,
            "transfers_to_host": self.transfers_to_host,
        }


def _nbytes(tree: Any) -> int:
    return int(
        sum(
            np.asarray(x).nbytes if not hasattr(x, "nbytes") else x.nbytes
            for x in jax.tree.leaves(tree)
        )
    )


_active = threading.local()  # the profile of the pack this thread runs (compiles are synchronous)
_registered = False
_register_lock = threading.Lock()


def _on_duration(event: str, seconds: float, **_: Any) -> None:
    profile = getattr(_active, "profile", None)
    if profile is None or event not in _COMPILE_EVENTS:
        return
    profile.compile_seconds += seconds
    if event == _PROGRAM_EVENT:
        profile.programs_compiled += 1


def _on_event(event: str, **_: Any) -> None:
    profile = getattr(_active, "profile", None)
    if profile is not None and event == _CACHE_HIT_EVENT:
        profile.programs_from_cache += 1


def _register() -> None:
    """Listen to JAX's compile events, once per process, from the first profiled pack on
    (not at import: importing dd leaves a caller's process as it was)."""
    global _registered
    with _register_lock:
        if not _registered:
            jax.monitoring.register_event_duration_secs_listener(_on_duration)
            jax.monitoring.register_event_listener(_on_event)
            _registered = True


@contextlib.contextmanager
def _listening(profile: PackProfile) -> Iterator[None]:
    _register()
    outer = getattr(_active, "profile", None)
    _active.profile = profile
    try:
        yield
    finally:
        _active.profile = outer


def table_lines(records: list[dict[str, Any]]) -> list[str]:
    """``dd status SWEEP --profile``: one line per pack (seconds per phase, programs, MB moved)
    and a total line; ``records`` are the stored profiles, each with its ``pack_id``."""
    header = (
        f"{'pack':<14}" + "".join(f"{p:>9}" for p in PHASES) + f"{'programs':>9}{'MB in/out':>12}"
    )
    lines = [header]
    totals = dict.fromkeys(PHASES, 0.0)
    for record in records:
        phases = record["phases"]
        for p in PHASES:
            totals[p] += phases.get(p, 0.0)
        moved = f"{record['bytes_to_device'] / 1e6:.1f}/{record['bytes_to_host'] / 1e6:.1f}"
        lines.append(
            f"{record['pack_id']:<14}"
            + "".join(f"{phases.get(p, 0.0):>9.2f}" for p in PHASES)
            + f"{record['programs_compiled']:>9}{moved:>12}"
        )
    lines.append(f"{'all packs':<14}" + "".join(f"{totals[p]:>9.2f}" for p in PHASES))
    return lines
