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

    def __init__(
        self,
        name: str,
        results: str | Path,
        run: Callable[[threading.Event], Any],
        *,
        spec: Any = None,
    ):
        """``spec``: the loaded spec being run (``dd.plan.sweep.Spec``); without it, the
        one stored beside the results is read (written once the run starts)."""
        self.name, self.results, self.spec = name, results, spec
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

    def _spec(self):
        from dd.plan.states import load_stored_spec

        return self.spec if self.spec is not None else load_stored_spec(self.store)

    def status(self) -> dict[str, Any]:
        """Whether it still runs; the trials planned and of them done (stored), missing and
        failed (``dd.analysis.status.trial_counts``); the trials stored so far; the sweep's ETA
        in seconds (None before a step rate is measured or once it ended: ``dd.run.eta``); the
        driver's record (packs done, running; None once it ended) and each running pack's
        progress (epoch reached between evaluation points, last mean errors, rate, ETA: what
        ``dd status`` shows); the refinement's round in progress or last (``refine``, None
        without one: ``dd.plan.refine.refine_line``)."""
        from dd.analysis.status import driver_eta, trial_counts
        from dd.plan.refine import refine_line
        from dd.plan.states import load_plan, plan_of
        from dd.spec.errors import DDError

        store = self.store
        try:
            plan = plan_of(self.spec) if self.spec is not None else load_plan(store)
            counts: dict[str, Any] = trial_counts(store, plan)
        except DDError:  # no spec given, none stored yet: nothing to count
            counts = dict.fromkeys(("planned", "done", "missing", "failed"))
        driver = store.driver_record()
        driver = driver if driver is not None and not driver["stale"] else None
        return {
            "running": self.running(),
            **counts,
            "stored_trials": len(store.stored_trial_ids()),
            "eta_s": driver_eta(driver) if driver else None,
            "driver": driver,
            "packs_running": [r for r in store.running_packs() if not r["stale"]],
            "failed_packs": [f["pack_id"] for f in store.failures()],
            "refine": refine_line(store),
        }

    def rows(self) -> pa.Table:
        """Every row stored so far, running packs' partial rows included (``partial``
        true), as Arrow; no rows (the row schema's columns) before the first evaluation."""
        table = self.store.read_results(partial=True)
        return table if table is not None else no_rows()

    def curves(self) -> dict:
        """The curve sets drawn from the rows so far (provisional while it runs), by kind
        (as ``dd.api.curves``); none before the first evaluation."""
        from dd.analysis.aggregate import (
            sweep_curves,  # the curve code loads when curves are asked for
        )
        from dd.plan.refine import stored_additions, stored_seed_sites

        rows = self.rows()
        if not rows.num_rows:
            return {}
        sets, _ = sweep_curves(
            rows, self._spec(), stored_additions(self.store), stored_seed_sites(self.store)
        )
        return {c.kind: c for c in sets}

    def __repr__(self) -> str:
        """A few lines: running or ended, the trial counts and the ETA; once it ended, the
        result's summary (``dd.result.SweepResult``) or the error it raised."""
        from dd.analysis.status import counts_line
        from dd.run.progress import clock

        status = self.status()
        head = f"{self.name}: {'running' if status['running'] else 'ended'}; "
        line = head + counts_line(self.name, status).split(": ", 1)[1]
        if status["eta_s"] is not None:
            line += f", ETA {clock(status['eta_s'])}"
        if status["running"]:
            return line
        if self._error is not None:
            return f"{line}\n{type(self._error).__name__}: {self._error}"
        return f"{line}\n{self._result}" if self._result is not None else line

    def wait(self, timeout: float | None = None) -> Any:
        """The sweep's result once it ends (``dd.result.SweepResult``); raises what it raised,
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


def no_rows() -> pa.Table:
    """A results table with no rows: the row schema's metadata and metric columns."""
    from dd.store.schema import META, METRICS

    return pa.schema(list(META) + [(m, t) for m, (t, _) in METRICS.items()]).empty_table()
