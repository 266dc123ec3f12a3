"""What ``dd status`` shows: a sweep's trial counts, its failed packs, the running driver's
packs done and the sweep's ETA (``dd.run.eta``), each running pack's progress
(``dd.run.worker.LiveRows``), and, with ``--profile``, where each pack's time went."""

from __future__ import annotations

import json
import sys
import time

from dd.plan.refine import refine_line
from dd.plan.states import trial_states
from dd.run.progress import clock
from dd.store.plan import StoredPlan


def status_lines(store, plan: StoredPlan) -> tuple[list[str], bool]:
    """``dd status``'s lines, and whether any pack runs (a live record, not a stale one)."""
    stored, diverged = store.stored_and_diverged()
    states = trial_states(store, plan, stored)
    diverged &= states["done"]
    lines = [
        f"{store.name}: {len(states['planned'])} trials planned: {len(states['done'])} done"
        + (f" ({len(diverged)} diverged)" if diverged else "")
        + f", {len(states['missing'])} missing, {len(states['failed'])} failed"
    ]
    current, earlier = split_failures(store.failures(), states["planned"])
    for f in current:
        lines.append(f"  failed pack {f['pack_id']} ({len(f['trial_ids'])} trials): {f['reason']}")
    for f in earlier:
        lines.append(
            f"  pack {f['pack_id']} of an earlier version of the spec failed "
            f"({len(f['trial_ids'])} trials, none in the current plan): {f['reason']}"
        )
    if states["stale"]:
        lines.append(
            f"  {len(states['stale'])} trials stale (partial rows of a pack that stopped: "
            "rerun to finish them)"
        )
    driver = store.driver_record()
    if driver is not None and not driver["stale"]:
        lines.append("  " + driver_line(driver))
    if (line := refine_line(store)) is not None:
        lines.append("  " + line)
    running = store.running_packs()
    for r in running:
        lines.append(
            f"  pack {r['pack_id']} started {r['started']} by pid {r['pid']} on {r['host']}"
            + (
                "; stale: that process is gone (the next 'dd sweep' reruns the pack)"
                if r["stale"]
                else ""
            )
        )
        if ("epoch" in r or "reached" in r) and not r["stale"]:
            lines.append("    " + progress_line(r))
    if states["earlier"]:
        lines.append(
            f"  {len(states['earlier'])} stored trials belong to an earlier version of the spec"
        )
    return lines, any(not r["stale"] for r in running)


def split_failures(failures: list[dict], planned: set[str]) -> tuple[list[dict], list[dict]]:
    """The failure records whose pack holds a trial of the current plan, and those of earlier
    spec versions (none of their trials planned now: not a current failure)."""
    current = [f for f in failures if planned.intersection(f["trial_ids"])]
    return current, [f for f in failures if f not in current]


def trial_counts(store, plan: StoredPlan) -> dict[str, int]:
    """How many of the plan's trials there are, are stored (``done``), missing and failed."""
    states = trial_states(store, plan, store.stored_trial_ids())
    return {k: len(states[k]) for k in ("planned", "done", "missing", "failed")}


def counts_line(name: str, counts: dict[str, int]) -> str:
    """``NAME: 6 trials planned: 4 done, 0 failed``: the short form of ``dd status``'s line."""
    return (
        f"{name}: {counts.get('planned', 0)} trials planned: {counts.get('done', 0)} done, "
        f"{counts.get('failed', 0)} failed"
    )


def driver_eta(driver: dict, now: float | None = None) -> float | None:
    """The sweep's ETA in the driver's record (``dd.run.eta``), less the time since it
    wrote it; None before a step rate was measured."""
    if driver.get("eta_s") is None:
        return None
    now = time.time() if now is None else now
    return max(driver["eta_s"] - max(now - driver.get("updated_at", now), 0.0), 0.0)


def driver_line(driver: dict, now: float | None = None) -> str:
    """The running driver's packs done and running, time elapsed and the sweep's ETA."""
    now = time.time() if now is None else now
    elapsed = now - driver.get("started_at", now)
    failed = f", {driver['packs_failed']} failed" if driver.get("packs_failed") else ""
    return (
        f"driver pid {driver['pid']} on {driver['host']}: {driver['packs_done']}/"
        f"{driver['packs']} packs done{failed}, {driver['packs_running']} running; "
        f"{clock(elapsed)} elapsed, sweep ETA {clock(driver_eta(driver, now))}"
    )


def progress_line(r: dict) -> str:
    """A running pack's epoch reached (moving between evaluation points), its last
    evaluation's errors, steady rate and ETA (``dd.run.worker.LiveRows``)."""
    widths = r.get("widths") or []
    span = f", widths {widths[0]}-{widths[-1]}" if len(widths) > 1 else ""
    errors = "".join(
        f", {m.replace('_', ' ')} {r[m]:.3f}"
        for m in ("test_error", "train_error")
        if r.get(m) is not None
    )
    reached = r.get("reached", r.get("epoch"))
    if errors and r.get("epoch") != reached:
        errors += f" (at epoch {r['epoch']})"
    rate = r.get("epochs_per_s")
    speed = f", {rate:.2f} epochs/s" if rate else ""
    eta = r.get("eta_s")
    return (
        f"{r.get('trials', '?')} trials{span}: epoch {reached}/{r['epochs']}{errors}"
        f"{speed}, ETA {clock(eta)}"
    )


def stored_profiles(store) -> tuple[list[dict], list[str]]:
    """The profiles of the stored packs, and one line per profile left out: a damaged one
    (quarantined with its own warning) or one whose pack has no file in ``packs/`` (its
    file quarantined as unreadable: its time bought no stored result)."""
    folder = store.dir / "profiles"
    on_disk = len(list(folder.glob("pack-*.json"))) if folder.is_dir() else 0
    records = store.profiles()
    packs = {p.name for p in store.pack_files()}
    kept = [r for r in records if store.pack_path(r["pack_id"]).name in packs]
    left = [
        f"profile of pack {r['pack_id']} left out: no pack file (quarantined or removed)"
        for r in records
        if r not in kept
    ]
    left += ["damaged profile left out (moved to corrupt/)"] * (on_disk - len(records))
    return kept, left


def print_profiles(store, form: str) -> int:
    """``dd status SWEEP --profile``: where each stored pack's time went (``dd.engine.profile``),
    and which profiles were left out (on stderr for ``json``, so stdout stays JSON)."""
    from dd.engine.profile import table_lines

    records, left = stored_profiles(store)
    said = [f"{len(left)} profile{'' if len(left) == 1 else 's'} left out:", *left] if left else []
    if form == "json":
        print(json.dumps(records, indent=1))
        for line in said:
            print(line, file=sys.stderr)
        return 0
    if not records:
        print(f"{store.name}: no pack profiles stored yet (each pack writes one when it ends)")
    else:
        print("\n".join(table_lines(records)))
    for line in said:
        print(line if line is said[0] else "  " + line)
    return 0
