"""Effective model complexity (EMC, Nakkiran et al. 2019) of sweeps over the training-set size.

Pure functions of Arrow tables: per capacity value and evaluation epoch, the largest n_train
whose mean train metric over seeds is below the tolerance
(``dd.analysis.curves.landmarks.emc_value``),
and where the final EMC reaches each n_train of a model-wise curve set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dd.analysis.curves.base import CurveSet, defaults, plain, series_axes, series_order
from dd.analysis.curves.landmarks import emc_value
from dd.store.schema import column_name

SAMPLE_AXES = ("data.n_train", "data.train_fraction")  # swept axes that set the training-set size
N_COLUMN = "data_n_train"


@dataclass(frozen=True)
class EmcSet:
    """The effective model complexity of one sweep over the training-set size."""

    axis: str  # the swept axis that sets n_train (data.n_train, or train_fraction on modular data)
    series: tuple[str, ...]  # the other swept axes (capacity first, as swept), one EMC each
    metric: str  # the train metric read, and the tolerance below which a training set is fit
    tol: float
    table: pa.Table  # series cols, [epoch], emc, emc_low, emc_high, n_seeds, curve_seeds, censored
    grid: pa.Table  # series columns, [epoch], n_train, mean (the train metric over seeds)


def sample_axis(spec) -> str | None:
    """The swept axis that sets the training-set size (None if the sweep has none)."""
    return next((a for a in spec.axes if a in SAMPLE_AXES), None)


def emc_settings(spec) -> tuple[str, float]:
    """The train metric EMC reads and its tolerance: the threshold's, unless ``emc_tol``."""
    metric, tol = defaults(spec)
    return metric, tol if spec.curves.emc_tol is None else spec.curves.emc_tol


def emc_curves(rows: pa.Table, spec) -> EmcSet | None:
    """Per value of the other swept axes and per evaluation epoch (trained models), the EMC:
    the largest n_train whose mean train metric over seeds is below the tolerance.

    ``emc`` is null when no swept n_train is fit; ``censored`` when the largest one is (the
    EMC is at least that). ``emc_low`` / ``emc_high`` span the EMCs of the single seeds (a
    seed that fits none makes ``emc_low`` null) over the ``curve_seeds`` of the ``n_seeds``
    stored at every n_train (a seed refinement added at a few sizes has no whole curve).
    None when the sweep has no n_train axis.
    """
    axis = sample_axis(spec)
    metric, tol = emc_settings(spec)
    if axis is None or metric not in rows.column_names or len(rows) == 0:
        return None
    series = series_axes(spec, rows, axis)
    by_epoch = "epoch" in rows.column_names and rows["epoch"].null_count == 0
    group_cols = [column_name(a) for a in series] + ["epoch"] * by_epoch
    data = {
        c: rows[c].to_numpy(zero_copy_only=False)
        for c in dict.fromkeys([N_COLUMN, "seed", metric, *group_cols])
    }
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(
        zip(*(data[c] for c in group_cols), strict=True) if group_cols else [()] * len(rows)
    ):
        groups.setdefault(tuple(plain(v) for v in key), []).append(i)
    records, grid = [], []
    for key in sorted(groups, key=series_order):
        idx = np.asarray(groups[key])
        n, seed, value = data[N_COLUMN][idx], data["seed"][idx], data[metric][idx].astype(float)
        ns = np.unique(n)
        means = np.array(
            [np.nanmean(value[n == v]) if np.any(~np.isnan(value[n == v])) else np.nan for v in ns]
        )
        per_seed = []
        for s in np.unique(seed):
            mine = seed == s
            if len(np.unique(n[mine])) < len(ns):  # no whole curve: its EMC would be wrong
                continue
            order = np.argsort(n[mine])
            per_seed.append(emc_value(n[mine][order], value[mine][order], tol))
        emc = emc_value(ns, means, tol)
        here = dict(zip(group_cols, key, strict=True))
        grid += [
            {**here, "n_train": int(v), "mean": float(m)} for v, m in zip(ns, means, strict=True)
        ]
        reached = [e for e in per_seed if e is not None]
        records.append(
            {
                **here,
                "emc": emc,
                "emc_low": min(reached) if reached and len(reached) == len(per_seed) else None,
                "emc_high": max(reached) if reached else None,
                "n_seeds": len(np.unique(seed)),
                "curve_seeds": len(per_seed),
                "censored": emc == float(ns.max()),
            }
        )
    return EmcSet(
        axis=axis,
        series=series,
        metric=metric,
        tol=tol,
        table=pa.Table.from_pylist(records),
        grid=pa.Table.from_pylist(grid),
    )


def final_emc(emc: EmcSet) -> pa.Table:
    """The EMC rows at each series' last evaluation epoch (all rows for closed-form fits)."""
    if "epoch" not in emc.table.column_names:
        return emc.table
    series_cols = [column_name(a) for a in emc.series]
    last: dict[tuple, int] = {}
    for r in emc.table.to_pylist():
        key = tuple(r[c] for c in series_cols)
        last[key] = max(last.get(key, r["epoch"]), r["epoch"])
    return emc.table.filter(
        pa.array(
            [r["epoch"] == last[tuple(r[c] for c in series_cols)] for r in emc.table.to_pylist()]
        )
    )


def emc_crossings(emc: EmcSet, curves: CurveSet, sizes: dict) -> list[dict]:
    """Where the final EMC reaches each training-set size of a model-wise curve set: per
    landmark (one per n_train of the sweep), the smallest capacity x whose EMC is at least
    that n_train, beside the located threshold and peaks: Nakkiran et al.'s hypothesis is
    that the test peak sits there. ``sizes`` maps a value of the sample axis to its n_train.
    """
    axis_col, x_col = column_name(emc.axis), column_name(curves.x)
    if (
        curves.kind != "model_wise"
        or emc.axis not in curves.series
        or x_col not in [column_name(a) for a in emc.series]
    ):
        return []
    others = [column_name(a) for a in curves.series if a != emc.axis]
    final = final_emc(emc).to_pylist()
    out = []
    for mark in curves.landmarks.to_pylist():
        n_train = sizes.get(mark[axis_col])
        mine = sorted(
            (r for r in final if all(r[c] == mark[c] for c in others)), key=lambda r: r[x_col]
        )
        reached = [r[x_col] for r in mine if r["emc"] is not None and r["emc"] >= n_train]
        out.append(
            {
                **{c: mark[c] for c in others},
                axis_col: mark[axis_col],
                "n_train": n_train,
                "x": curves.x,
                "emc_cross_x": float(reached[0]) if reached else None,
                **{k: v for k, v in mark.items() if k not in others and k != axis_col},
            }
        )
    return out


def train_sizes(rows: pa.Table, axis: str) -> dict:
    """{value of the sample axis: its n_train} as stored (a fraction -> pairs on modular data)."""
    return dict(zip(rows[column_name(axis)].to_pylist(), rows[N_COLUMN].to_pylist(), strict=True))
