"""A stored sweep's plan, rows and trial states: what ``dd status`` needs, and nothing that
draws or fits. Reading only reads: the plan comes from ``plan.parquet`` (``dd.store.plan``);
only a store written before plans were stored is planned again from its spec.yaml, and ids of
older stores are adopted on the write path (``dd sweep``, ``dd migrate``), never here."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from dd.plan.sweep import DEFAULT_MAX_TRIALS, Spec, parse_spec
from dd.spec.config import Trial
from dd.spec.errors import SpecError, StoreError
from dd.spec.expand import CHUNK, ids_of
from dd.store.plan import StoredPlan, read_plan, write_plan
from dd.store.schema import column_name, flatten_config
from dd.store.sweep import REWRITE, SweepStore


def load_stored_spec(store: SweepStore, *, max_trials: int = DEFAULT_MAX_TRIALS) -> Spec:
    """The spec saved beside the results, parsed (what the curves read of it); ``max_trials``:
    the caller's ``Settings.max_trials``, so a sweep run under a raised limit can still be
    read."""
    try:
        return parse_spec(store.read_spec_mapping(), max_trials=max_trials)
    except SpecError as e:  # it was valid when stored: damaged, or from another dd version
        raise StoreError(
            f"{store.spec_path}: the stored spec is not valid ({e}); {REWRITE}"
        ) from None


def load_plan(store: SweepStore, *, max_trials: int = DEFAULT_MAX_TRIALS) -> StoredPlan:
    """The sweep's current plan: its stored ``plan.parquet``, else (a store written before
    plans were stored, or a damaged plan) its stored spec planned again."""
    return read_plan(store) or plan_of(load_stored_spec(store, max_trials=max_trials))


def plan_of(spec: Spec) -> StoredPlan:
    """The plan of a loaded spec, as read commands see a stored one."""
    return StoredPlan(name=spec.name, axes=tuple(spec.axes), trial_ids=tuple(ids_of(spec.trials)))


def store_plan(store: SweepStore, spec: Spec, packs: list) -> None:
    """Write ``spec``'s plan beside it: each trial's id, the pack that runs it in this run
    (null where it is already stored) and its config columns (``dd.store.plan``)."""
    pack_of = {tid: pack.id for pack in packs for tid in pack.trial_ids}
    table = planned_table(spec.trials, set())
    packs_column = pa.array([pack_of.get(t) for t in table.column("trial_id").to_pylist()])
    write_plan(
        store,
        table.drop_columns(["stored"]).add_column(1, "pack_id", packs_column.cast(pa.string())),
        tuple(spec.axes),
    )


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


def trial_states(store: SweepStore, plan: StoredPlan, stored: set[str]) -> dict[str, set[str]]:
    """The plan's trial ids by state (``planned``, ``done``, ``missing``, ``failed``), the
    ``earlier`` stored ids that the current plan no longer holds, and the not done ones with
    ``stale`` rows (of a pack that stopped: ``dd.store.live``); ``stored``: the stored ids."""
    planned = set(plan.trial_ids)
    failed = {tid for f in store.failures() for tid in f["trial_ids"]} & planned - stored
    return {
        "planned": planned,
        "done": planned & stored,
        "missing": planned - stored - failed,
        "failed": failed,
        "earlier": stored - planned,
        "stale": store.stale_trial_ids() & planned - stored,
    }


def planned_table(trials: Sequence[Trial], stored: set[str], chunk: int = CHUNK) -> pa.Table:
    """One row per planned trial: its id, whether it is stored, its config columns; built a
    chunk of rows at a time (a million rows as dicts at once would take gigabytes), a column
    at a time, each set of parts flattened once (a grid's trials share their parts). A
    chunk's columns are those of its first row (as ``pa.Table.from_pylist`` takes them)."""
    ids = ids_of(trials)
    flat: dict[tuple[int, ...], tuple[tuple, dict]] = {}  # ids of the parts -> their columns

    def columns_of(t: Trial) -> dict:
        key = (id(t.data), id(t.model), id(t.fit), id(t.train))
        known = flat.get(key)
        if known is None:
            out: dict[str, Any] = {}
            for name in PARTS:
                value = getattr(t, name)
                out.update(
                    flatten_config(value, name)
                    if dataclasses.is_dataclass(value)
                    else {column_name(name): value}
                )
            known = flat[key] = ((t.data, t.model, t.fit, t.train), out)  # (parts kept alive)
        return known[1]

    tables = []
    for start in range(0, len(trials), chunk):
        rows = trials[start : start + chunk]
        chunk_ids = ids[start : start + chunk]
        parts = [columns_of(t) for t in rows]
        columns = {
            "trial_id": chunk_ids,
            "stored": [tid in stored for tid in chunk_ids],
            "seed": [t.seed for t in rows],
        }
        for name in parts[0]:
            columns[name] = [p.get(name) for p in parts]
        tables.append(pa.Table.from_pydict(columns))
    return pa.concat_tables(tables, promote_options="permissive")


PARTS = tuple(f.name for f in dataclasses.fields(Trial) if f.name != "seed")  # (seed: first)
