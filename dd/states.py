"""A stored sweep's spec, rows and trial states: what ``dd status`` needs, and nothing that
draws or fits (so the status command does not import matplotlib or scipy)."""

from __future__ import annotations

import pyarrow as pa

from dd.adopt import adopt_legacy_ids
from dd.errors import StoreError
from dd.ids import trial_id
from dd.schema import flatten_config
from dd.spec import Spec, parse_spec
from dd.store import SweepStore


def load_stored_spec(store: SweepStore) -> Spec:
    """The spec saved beside the results: the sweep's current plan (its rows stored under a
    legacy id renamed first, ``dd.adopt``)."""
    spec = parse_spec(store.read_spec_mapping())
    adopt_legacy_ids(store, spec)
    return spec


def stored_rows(store: SweepStore) -> pa.Table:
    """Every stored row of the sweep; a StoreError when nothing is stored yet."""
    table = store.read_results()
    if table is None:
        raise StoreError(f"{store.dir}: no results stored yet; run 'dd sweep' first")
    return table


def trial_states(store: SweepStore, spec: Spec, stored: set[str]) -> dict[str, set[str]]:
    """The spec's trial ids by state (``planned``, ``done``, ``missing``, ``failed``) and the
    ``earlier`` stored ids that the current spec no longer plans; ``stored``: the stored ids."""
    planned = {trial_id(t) for t in spec.trials}
    failed = {tid for f in store.failures() for tid in f["trial_ids"]} & planned - stored
    return {
        "planned": planned,
        "done": planned & stored,
        "missing": planned - stored - failed,
        "failed": failed,
        "earlier": stored - planned,
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
