"""A sweep's stored plan, ``<sweep>/plan.parquet``: every trial the current spec plans, one
row each (its id, the pack that runs it in the run that wrote the plan, its flattened config),
with the spec's name and axes in the file's metadata.

``dd sweep`` writes it beside spec.yaml, atomically, before any pack runs. Read commands take
the sweep's plan from it, so they never parse a spec, expand a grid, hash a user's data file,
import JAX or user code, or write to the store. A store written before plans were stored has
none: its readers fall back to the stored spec (``dd.plan.states.load_plan``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import pyarrow as pa

from dd.store.paths import read_parquet, write_parquet
from dd.store.sweep import SweepStore, first_line

PLAN_FILE = "plan.parquet"
_META = b"dd.plan"


@dataclass(frozen=True)
class StoredPlan:
    """What read commands know of a sweep's plan: its name, axes and planned trial ids."""

    name: str
    axes: tuple[str, ...]
    trial_ids: tuple[str, ...]


def write_plan(store: SweepStore, table: pa.Table, axes: tuple[str, ...]) -> None:
    """``table`` (a ``trial_id`` column and any config columns) as the sweep's plan."""
    about = json.dumps({"name": store.name, "axes": list(axes)}).encode()
    write_parquet(store.dir / PLAN_FILE, table.replace_schema_metadata({_META: about}))


def read_plan(store: SweepStore) -> StoredPlan | None:
    """The stored plan, or None where there is none; a damaged one is said in one line and
    read as none (the caller falls back to the stored spec)."""
    path = store.dir / PLAN_FILE
    if not path.exists():
        return None
    try:
        table = read_parquet(path, ["trial_id"])
        about = json.loads(table.schema.metadata[_META])
        if not pa.types.is_string(table.schema.field("trial_id").type):
            raise TypeError(f"trial_id is {table.schema.field('trial_id').type}, not string")
        return StoredPlan(
            name=str(about["name"]),
            axes=tuple(str(a) for a in about["axes"]),
            trial_ids=tuple(table.column("trial_id").to_pylist()),
        )
    except (pa.ArrowInvalid, OSError, KeyError, TypeError, ValueError) as e:
        reason = first_line(e)
        print(f"warning: {path} is unreadable ({reason}); reading the stored spec", file=sys.stderr)
        return None
