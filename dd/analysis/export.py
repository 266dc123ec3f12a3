"""A sweep's rows for the tools people already watch: TensorBoard event files, one run per
trial, every numeric metric a scalar at its step (``dd export tensorboard SWEEP DIR``).

Written with tensorboardX; nothing is served: ``tensorboard --logdir DIR`` reads the folder.
A trial's run is named by its swept values (``model.width=8,seed=1``; a trial of an earlier
spec version that shares them gets its id appended), and those values, its ``n_params`` and
its last ``epoch`` are its hyperparameters in the HParams dashboard, with each metric's final
value as ``final/<metric>``: the experiment (every hyperparameter and metric) is written once
at the folder's top, each run's session beside its scalars. ``n_params`` and ``epoch`` are no
time series: they are hyperparameters and the run's text (``config``). By default only the
current spec's trials are exported (the stored plan, ``dd.store.plan``); ``every`` exports
every stored trial.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from dd.plan.states import load_plan, stored_rows
from dd.spec.errors import StoreError
from dd.store.schema import METRICS, column_name
from dd.store.sweep import SweepStore

AS_HPARAMS = ("n_params", "epoch")  # constant along a run, or its x: not time series


def scalar_metrics(rows: pa.Table) -> list[str]:
    """The metrics of ``rows`` that are one number per row (lists and ids left out)."""
    return [
        m
        for m, (kind, _) in METRICS.items()
        if m in rows.column_names
        and (pa.types.is_floating(kind) or pa.types.is_integer(kind))
        and rows[m].null_count < len(rows)
    ]


def _plain(value):
    """A hyperparameter value HParams takes: a number, a bool or a string."""
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _last(values: np.ndarray):
    """The last value that is neither null nor NaN (None if there is none)."""
    kept = [v for v in values if v is not None and v == v]
    return kept[-1] if kept else None


def _writer(path: Path):
    from tensorboardX import SummaryWriter

    try:
        return SummaryWriter(logdir=str(path), flush_secs=3600)
    except OSError as e:
        raise StoreError(f"{path}: cannot write TensorBoard events ({e.strerror or e})") from None


def export_tensorboard(
    store: SweepStore, out: str | Path, axes: list[str], *, every: bool = False
) -> int:
    """Write one TensorBoard run per trial of the current spec (``every``: per stored trial)
    under ``out``; returns how many. ``axes``: the swept config paths (``model.width``)."""
    from tensorboardX.summary import hparams

    rows = stored_rows(store)
    if not every:
        planned = pa.array(sorted(load_plan(store).trial_ids), pa.string())
        rows = rows.filter(pa.compute.is_in(rows["trial_id"], value_set=planned))
    rows = rows.sort_by([("trial_id", "ascending"), ("step", "ascending")])
    metrics = scalar_metrics(rows)
    series = [m for m in metrics if m not in AS_HPARAMS]
    cols = {a: column_name(a) for a in axes}
    names = ["step", *cols.values(), *metrics]
    columns = {c: rows[c].to_numpy(zero_copy_only=False) for c in dict.fromkeys(names)}
    ids = np.asarray(rows["trial_id"].to_pylist())
    trials = list(dict.fromkeys(ids))
    sessions, taken = [], set()
    for tid in trials:
        mine = ids == tid
        swept = {a: _plain(columns[c][mine][0]) for a, c in cols.items()}
        name = ",".join(f"{a}={v}" for a, v in swept.items()).replace("/", "_") or tid
        name = name if name not in taken else f"{name},id={tid}"
        taken.add(name)
        fixed = {m: _plain(_last(columns[m][mine])) for m in AS_HPARAMS if m in metrics}
        final = {f"final/{m}": _last(columns[m][mine]) for m in series}
        final = {k: float(v) for k, v in final.items() if v is not None}
        sessions.append((tid, name, mine, {**swept, **fixed}, final))
    if sessions:  # the experiment, once: every hyperparameter (typed by its first value)
        every_hp = {k: v for s in reversed(sessions) for k, v in s[3].items()}
        every_metric = {k: 0.0 for s in sessions for k in s[4]}  # and metric of the runs
        experiment, _, _ = hparams(every_hp, every_metric)
        with _writer(Path(out)) as top:
            top.file_writer.add_summary(experiment)
    for tid, name, mine, hp, final in sessions:
        with _writer(Path(out) / name) as writer:
            _, start, end = hparams(hp, final)
            writer.file_writer.add_summary(start)
            told = ", ".join(f"{k} = {v}" for k, v in hp.items())
            writer.add_text("config", f"trial {tid}: {told}", 0)
            for m in series:
                for step, value in zip(columns["step"][mine], columns[m][mine], strict=True):
                    if value is not None and value == value:  # nulls and NaN are not drawn
                        writer.add_scalar(m, float(value), int(step))
            last = int(columns["step"][mine][-1])
            for tag, value in final.items():
                writer.add_scalar(tag, value, last)
            writer.file_writer.add_summary(end)
    return len(trials)
