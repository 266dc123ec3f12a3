"""A sweep running in a thread of this process, for notebooks: ``dd.api.sweep(spec,
wait=False)`` returns a ``SweepHandle`` at once, and the next cell can look at the forming
curves while the packs train (their rows so far are read from the store:
``dd.run.worker.LiveRows``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from dd.store.sweep import SweepStore


class SweepHandle:
    """The handle of one background sweep: ``status()``, ``rows()``, ``curves()``,
    ``wait()`` and ``cancel()``; ``run(stop)`` is the sweep itself (``dd.api``)."""

    def __init__(self, name: str, results: str | Path, run: Callable[[threading.Event], Any]):
        self.name, self.results = name, results
        self._stop = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._main, args=(run,), name=f"dd sweep {name}", daemon=True
        )
        self._thread.start()

    def _main(self, run: Callable[[threading.Event], Any]) -> None:
        try:
            self._result = run(self._stop)
        except BaseException as e:  # handed to wait(), which raises it in the caller's thread
            self._error = e

    @property
    def store(self) -> SweepStore:
        return SweepStore(self.results, self.name)

    def running(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        """Whether it still runs, the trials stored so far, the sweep's ETA in seconds (None
        before a step rate is measured or once it ended: ``dd.run.eta``), the driver's record
        (packs done, running; None once it ended) and each running pack's progress (epoch
        reached between evaluation points, last mean errors, rate, ETA: what ``dd status``
        shows)."""
        from dd.analysis.status import driver_eta

        store = self.store
        driver = store.driver_record()
        driver = driver if driver is not None and not driver["stale"] else None
        return {
            "running": self.running(),
            "stored_trials": len(store.stored_trial_ids()),
            "eta_s": driver_eta(driver) if driver else None,
            "driver": driver,
            "packs_running": [r for r in store.running_packs() if not r["stale"]],
            "failed_packs": [f["pack_id"] for f in store.failures()],
        }

    def rows(self) -> pa.Table | None:
        """Every row stored so far, running packs' partial rows included (``partial``
        true), as Arrow; None before the first pack has evaluated."""
        return self.store.read_results(partial=True)

    def curves(self) -> dict:
        """The curve sets drawn from the rows so far, by kind (as ``dd.api.curves``)."""
        from dd.analysis.aggregate import (
            sweep_curves,  # the curve code loads when curves are asked for
        )
        from dd.plan.states import load_stored_spec, stored_rows

        store = self.store
        sets, _ = sweep_curves(stored_rows(store, live=True), load_stored_spec(store))
        return {c.kind: c for c in sets}

    def wait(self, timeout: float | None = None) -> Any:
        """The sweep's result once it ends (``dd.api.SweepResult``); raises what it raised,
        ``TimeoutError`` if it still runs after ``timeout`` seconds."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"{self.name}: still running after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._result

    def cancel(self) -> None:
        """Ask the sweep to stop (it ends within about half a second, raising
        ``dd.spec.errors.Cancelled`` from ``wait()``); finished packs are kept."""
        self._stop.set()
