"""What ``dd status`` shows: a sweep's trial counts, its failed packs, each running pack's
progress (``dd.run.worker.LiveRows``), and, with ``--profile``, where each pack's time went."""

from __future__ import annotations

import json

from dd.plan.states import trial_states


def status_lines(store, spec) -> tuple[list[str], bool]:
    """``dd status``'s lines, and whether any pack runs (a live record, not a stale one)."""
    states = trial_states(store, spec, store.stored_trial_ids())
    diverged = store.diverged_trial_ids() & states["done"]
    lines = [
        f"{store.name}: {len(states['planned'])} trials planned: {len(states['done'])} done"
        + (f" ({len(diverged)} diverged)" if diverged else "")
        + f", {len(states['missing'])} missing, {len(states['failed'])} failed"
    ]
    for f in store.failures():
        lines.append(f"  failed pack {f['pack_id']} ({len(f['trial_ids'])} trials): {f['reason']}")
    if states["stale"]:
        lines.append(
            f"  {len(states['stale'])} trials stale (partial rows of a pack that stopped: "
            "rerun to finish them)"
        )
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
        if "epoch" in r and not r["stale"]:
            lines.append("    " + progress_line(r))
    if states["earlier"]:
        lines.append(
            f"  {len(states['earlier'])} stored trials belong to an earlier version of the spec"
        )
    return lines, any(not r["stale"] for r in running)


def progress_line(r: dict) -> str:
    """A running pack's last evaluation, rate and ETA (``dd.run.worker.LiveRows``)."""
    widths = r.get("widths") or []
    span = f", widths {widths[0]}-{widths[-1]}" if len(widths) > 1 else ""
    errors = "".join(
        f", {m.replace('_', ' ')} {r[m]:.3f}"
        for m in ("test_error", "train_error")
        if r.get(m) is not None
    )
    eta = int(r["eta_s"])
    clock = f"{eta // 3600}h{eta % 3600 // 60:02d}m{eta % 60:02d}s"
    return (
        f"{r.get('trials', '?')} trials{span}: epoch {r['epoch']}/{r['epochs']}{errors}, "
        f"{r['epochs_per_s']:.2f} epochs/s, ETA {clock}"
    )


def print_profiles(store, form: str) -> int:
    """``dd status SWEEP --profile``: where each stored pack's time went (``dd.engine.profile``)."""
    from dd.engine.profile import table_lines

    records = store.profiles()
    if form == "json":
        print(json.dumps(records, indent=1))
    elif not records:
        print(f"{store.name}: no pack profiles stored yet (each pack writes one when it ends)")
    else:
        print("\n".join(table_lines(records)))
    return 0
