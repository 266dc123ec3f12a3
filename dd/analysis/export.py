"""A sweep's rows for the tools people already watch: TensorBoard event files, one run per
trial, every numeric metric a scalar at its step (``dd export tensorboard SWEEP DIR``).

Written with tensorboardX's ``SummaryWriter``; nothing is served: ``tensorboard --logdir DIR``
reads the folder. A trial's run folder is named by its id, and its swept values are its run's
text (``config``), so TensorBoard's run filter finds a width or a seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from dd.plan.states import stored_rows
from dd.spec.errors import StoreError
from dd.store.schema import METRICS
from dd.store.sweep import SweepStore


def scalar_metrics(rows: pa.Table) -> list[str]:
    """The metrics of ``rows`` that are one number per row (lists and ids left out)."""
    return [
        m
        for m, (kind, _) in METRICS.items()
        if m in rows.column_names
        and (pa.types.is_floating(kind) or pa.types.is_integer(kind))
        and rows[m].null_count < len(rows)
    ]


def export_tensorboard(store: SweepStore, out: str | Path, axes: list[str]) -> int:
    """Write one TensorBoard run per stored trial under ``out``; returns how many.
    ``axes``: the swept config columns written as each run's text."""
    from tensorboardX import SummaryWriter

    rows = stored_rows(store).sort_by([("trial_id", "ascending"), ("step", "ascending")])
    metrics = scalar_metrics(rows)
    ids = np.asarray(rows["trial_id"].to_pylist())
    columns = {c: rows[c].to_numpy(zero_copy_only=False) for c in ["step", *axes, *metrics]}
    trials = list(dict.fromkeys(ids))
    for tid in trials:
        mine = ids == tid
        try:
            writer = SummaryWriter(logdir=str(Path(out) / tid), flush_secs=3600)
        except OSError as e:
            raise StoreError(
                f"{out}: cannot write TensorBoard events ({e.strerror or e})"
            ) from None
        with writer:
            values = ", ".join(f"{a} = {columns[a][mine][0]}" for a in axes)
            writer.add_text("config", f"trial {tid}: {values}" if values else f"trial {tid}", 0)
            for m in metrics:
                for step, value in zip(columns["step"][mine], columns[m][mine], strict=True):
                    if value is not None and value == value:  # nulls and NaN are not drawn
                        writer.add_scalar(m, float(value), int(step))
    return len(trials)
