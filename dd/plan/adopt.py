"""Stored sweeps from before trial ids followed content keep resolving.

dd once hashed a dataset's location (an image ``data_dir``, an ``.npz`` path) into the trial
id. When a spec meets its store, the rows of each planned trial stored under that older id
(``dd.spec.ids.legacy_trial_id``) are rewritten under its current id, one pack file at a time
(to a temporary name, renamed), and its saved parameters renamed, so the store, the curves
and ``dd query`` see them as the trials they are. Other sweeps cost one pass over the trials.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from dd.plan.sweep import Spec
from dd.spec.config import Trial
from dd.spec.expand import distinct_parts
from dd.spec.ids import IDENTITY, legacy_trial_id, trial_id
from dd.store.paths import read_parquet, write_parquet
from dd.store.sweep import SweepStore


def adopt_legacy_ids(store: SweepStore, spec: Spec) -> int:
    """Rename the stored rows of ``spec``'s trials from their legacy ids to their current
    ones; returns how many trials were renamed (0 for every sweep stored since)."""
    if not any(_has_identity_fields(t) for t in distinct_parts(spec.trials)):
        return 0  # (it reads the data alone)
    renames = {}
    for trial in spec.trials:
        if _has_identity_fields(trial):
            old, new = legacy_trial_id(trial), trial_id(trial)
            if old != new:
                renames[old] = new
    if not renames:
        return 0
    stored = store.stored_trial_ids()
    renames = {old: new for old, new in renames.items() if old in stored}
    for path in store.readable_pack_files() if renames else ():
        table = read_parquet(path)
        ids = table.column("trial_id").to_pylist()
        if any(tid in renames for tid in ids):
            column = pa.array([renames.get(tid, tid) for tid in ids], pa.string())
            index = table.schema.get_field_index("trial_id")
            write_parquet(path, table.set_column(index, "trial_id", column))
    for old, new in renames.items():  # a trial's saved parameters (train.save_params)
        params = store.params_path(old)
        if params.is_file():
            params.replace(store.params_path(new))
    return len(renames)


def _has_identity_fields(trial: Trial) -> bool:
    """Whether the trial's data names a user file or a location other than the default (the
    only parts whose ids moved); other trials' legacy ids equal their ids, not recomputed."""
    return any(
        f.metadata.get(IDENTITY) == "content"
        or f.metadata.get(IDENTITY) == "location"
        and getattr(trial.data, f.name) != f.default
        for f in dataclasses.fields(trial.data)
    )
