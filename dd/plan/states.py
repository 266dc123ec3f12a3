"""A stored sweep's spec, rows and trial states: what ``dd status`` needs, and nothing that
draws or fits (so the status command does not import matplotlib or scipy)."""

from __future__ import annotations

import pyarrow as pa

from dd.plan.adopt import adopt_legacy_ids
from dd.plan.sweep import DEFAULT_MAX_TRIALS, Spec, parse_spec
from dd.spec.errors import StoreError
from dd.spec.ids import trial_id
from dd.store.schema import flatten_config
from dd.store.sweep import SweepStore


def load_stored_spec(store: SweepStore, *, max_trials: int = DEFAULT_MAX_TRIALS) -> Spec:
    """The spec saved beside the results: the sweep's current plan (its rows stored under a
    legacy id renamed first, ``dd.plan.adopt``); ``max_trials``: the caller's
    ``Settings.max_trials``, so a sweep run under a raised limit can still be read."""
    spec = parse_spec(store.read_spec_mapping(), max_trials=max_trials)
    adopt_legacy_ids(store, spec)
    return spec


def stored_rows(store: SweepStore, live: bool = False) -> pa.Table:
    """Every stored row of the sweep (``live``: and running packs' rows so far, never the
    stale rows of packs that stopped); a StoreError when nothing is stored yet."""
    table = store.read_results(partial=live)
    if table is None:
        raise StoreError(f"{store.dir}: no results stored yet; run 'dd sweep' first")
    return table


def running_notice(store: SweepStore) -> str | None:
    """One line for curves drawn while packs still run, None when none does."""
    running = [r for r in store.running_packs() if not r["stale"] and "epoch" in r]
    if not running:
        return None
    widths = sorted({w for r in running for w in r.get("widths") or []})
    span = f", widths {widths[0]}-{widths[-1]}" if len(widths) > 1 else ""
    epochs = sorted({(r["epoch"], r["epochs"]) for r in running})
    at = (
        f"epoch {epochs[0][0]} of {epochs[0][1]}"
        if len(epochs) == 1
        else (f"epochs {epochs[0][0]}-{epochs[-1][0]} of {epochs[-1][1]}")
    )
    trials = sum(r.get("trials", 0) for r in running)
    return (
        f"running: {len(running)} pack{'' if len(running) == 1 else 's'} ({trials} trials{span}) "
        f"at {at}; curves are provisional"
    )


def trial_states(store: SweepStore, spec: Spec, stored: set[str]) -> dict[str, set[str]]:
    """The spec's trial ids by state (``planned``, ``done``, ``missing``, ``failed``), the
    ``earlier`` stored ids that the current spec no longer plans, and the not done ones with
    ``stale`` rows (of a pack that stopped: ``dd.store.live``); ``stored``: the stored ids."""
    planned = {trial_id(t) for t in spec.trials}
    failed = {tid for f in store.failures() for tid in f["trial_ids"]} & planned - stored
    return {
        "planned": planned,
        "done": planned & stored,
        "missing": planned - stored - failed,
        "failed": failed,
        "earlier": stored - planned,
        "stale": store.stale_trial_ids() & planned - stored,
    }


def planned_table(trials: tuple, stored: set[str], chunk: int = 65536) -> pa.Table:
    """One row per planned trial: its id, whether it is stored, its config columns; built a
    chunk of rows at a time (a million rows as dicts at once would take gigabytes)."""
    parts = [
        pa.Table.from_pylist(
            [
                {"trial_id": trial_id(t), "stored": trial_id(t) in stored, **flatten_config(t)}
                for t in trials[start : start + chunk]
            ]
        )
        for start in range(0, len(trials), chunk)
    ]
    return pa.concat_tables(parts, promote_options="permissive")
