"""The report's state of a sweep still under way or without results (``dd.analysis.report``):
running packs and the driver, and the page's note when no row is stored (packs run, or every
one failed; stale rows of stopped packs are never results)."""

from __future__ import annotations

import html
import time

from dd.analysis.aggregate import Aggregate
from dd.plan.states import running_notice
from dd.plan.sweep import Spec
from dd.store.sweep import SweepStore


def _no_rows(store: SweepStore, spec: Spec) -> Aggregate:
    """The aggregate of a sweep with no row to read (stale rows of stopped packs are none):
    no curve, and while packs run, a notice of how many."""
    running = running_notice(store)
    live = [r for r in store.running_packs() if not r["stale"]]
    if running is None and live:
        trials = sum(r.get("trials", 0) for r in live)
        running = (
            f"running: {len(live)} pack{'' if len(live) == 1 else 's'} ({trials} trials), "
            "no evaluation point reached yet; no curves so far"
        )
    return Aggregate(
        curves=[],
        left_out=0,
        figures=[],
        tables=[],
        planned=len(spec.trials),
        missing=len(spec.trials),
        running=running,
    )


def _no_rows_note(store: SweepStore, aggregate: Aggregate) -> list[str]:
    """Why the page has no curve when no row is stored: packs run, or packs failed (their
    reasons are in the failures section) and their rows so far are stale, never results."""
    if aggregate.curves or aggregate.results or aggregate.left_out:
        return []
    failed = len(store.failures())
    why = (
        f"every pack failed ({failed}): their reasons are under Failed and diverged trials; "
        "rows of a pack that stopped are not results"
        if failed and not aggregate.running
        else "no pack has finished or reached an evaluation point yet"
    )
    return [f'<p class="no-rows"><b>No results stored yet</b>: {_e(why)}.</p>']


def _live(store: SweepStore, notice: str) -> list[str]:
    """While packs run: that the curves are provisional, the driver's packs done and the
    sweep's ETA (``dd.run.eta``), and each running pack's epoch reached."""
    from dd.analysis.status import driver_line, progress_line

    lines = [f'<p class="running"><b>{_e(notice)}</b></p>']
    driver = store.driver_record()
    if driver is not None and not driver["stale"]:
        lines.append(f'<p class="driver">{_e(driver_line(driver))}</p>')
    packs = [
        f"<li>pack {_e(r['pack_id'])}: {_e(progress_line(r))}</li>"
        for r in store.running_packs()
        if not r["stale"] and ("epoch" in r or "reached" in r)
    ]
    return lines + ([f'<ul class="packs">{"".join(packs)}</ul>'] if packs else [])


def _driver_runs(store: SweepStore) -> tuple[int, float]:
    """The driver runs and their wall time: the finished ones', and the running one's so far
    (its record is written while it runs; its run record only at its end)."""
    runs = store.runs()
    count, seconds = len(runs), sum(r["wall_time_s"] for r in runs)
    driver = store.driver_record()
    if driver is not None and not driver["stale"] and driver.get("started_at"):
        count, seconds = count + 1, seconds + max(time.time() - driver["started_at"], 0.0)
    return count, seconds


def _e(value) -> str:
    return html.escape(str(value))
