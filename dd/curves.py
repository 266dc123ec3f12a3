"""The aggregator: results rows -> curves over seeds, with the threshold and the peak located.

Pure functions of Arrow tables. A curve is a metric's mean over seeds, with a 95% Student-t
interval, at each value of an x axis (model-wise: a model field; sample-wise: data.n_train),
one curve per combination of the other swept axes (the series); each seed's own curve is
kept beside the mean.

Interpolation threshold: the smallest x whose mean ``threshold_metric`` is below
``threshold_tol``. Test peak: the largest mean test metric at or beyond the best x below the
threshold (so the classical U's left arm, where small models underfit, is not the peak).

Sample-wise curves (x = n_train) run the other way: more data is harder to fit, so their
landmark is the effective model complexity (EMC, Nakkiran et al. 2019), the largest n_train
whose mean train metric is below the tolerance, and the peak is the largest test metric at
or beyond the best n_train the model still fits. ``emc_curves`` tabulates the EMC of every
capacity value at every epoch for sweeps over the training-set size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute  # makes pa.compute available
from scipy import stats

from dd.schema import METRICS, STATUS_OK, column_name
from dd.spec import Spec, trial_id

MODEL_AXES_EXCLUDED = ("model.name",)
ACCURACIES = ("train_accuracy", "test_accuracy")  # derived for grokking curves
PEAK_METRICS = ("test_error", "test_mse", "population_risk", "coef_norm")  # peaks located
EFFECTIVE_METRICS = ("test_mse", "test_error")  # drawn against effective parameters


@dataclass(frozen=True)
class CurveSet:
    """Curves of one kind (model-wise or sample-wise) of one sweep."""

    kind: str
    x: str  # the dotted config path on the x axis
    series: tuple[str, ...]  # the other swept axes, one curve per combination of their values
    points: pa.Table  # series columns, x, metric, mean, ci_low, ci_high, n_seeds
    per_seed: pa.Table  # series columns, x, metric, seed, value: the curves of single seeds
    landmarks: pa.Table  # series columns, threshold_x, and per test metric peak_x / peak_value


def current_rows(table: pa.Table, spec: Spec) -> tuple[pa.Table, int]:
    """The ok rows of the spec's own trials, and how many of its stored trials were left out."""
    planned = pa.array(sorted(trial_id(t) for t in spec.trials))
    mine = table.filter(pa.compute.is_in(table["trial_id"], value_set=planned))
    ok = mine.filter(pa.compute.equal(mine["status"], STATUS_OK))
    left_out = len(set(mine["trial_id"].to_pylist()) - set(ok["trial_id"].to_pylist()))
    return ok, left_out


def defaults(spec: Spec) -> tuple[str, float]:
    """The threshold metric and tolerance: the spec's, else by model and task (see ``Curves``)."""
    trial = spec.trials[0]
    by_error = trial.data.CLASSIFICATION and not type(trial.model).CLOSED_FORM
    metric = spec.curves.threshold_metric or ("train_error" if by_error else "train_mse")
    tol = spec.curves.threshold_tol
    if tol is None:
        tol = 0.01 if metric.endswith("error") else 1e-6
    return metric, tol


def curve_kinds(spec: Spec) -> list[tuple[str, str]]:
    """(kind, x) for every curve the sweep supports; x is a config path or ``epoch``.

    model_wise and sample_wise use each trial's final evaluation; for trained networks also
    model_wise_best (each trial at its best test-error epoch) and epoch_wise (every epoch);
    for modular arithmetic also grokking (every evaluation, against optimizer steps), so a
    modular sweep over width gets the same model-wise curves and width x epoch heatmap as any.
    """
    kinds = []
    model_axes = [a for a in spec.axes if a.startswith("model.") and a not in MODEL_AXES_EXCLUDED]
    x_model = (
        spec.curves.x
        if spec.curves.x and spec.curves.x != "data.n_train"
        else (model_axes[0] if model_axes else None)
    )
    trained = not type(spec.trials[0].model).CLOSED_FORM
    if x_model:
        kinds.append(("model_wise", x_model))
        if trained:
            kinds.append(("model_wise_best", x_model))
    if "data.n_train" in spec.axes or spec.curves.x == "data.n_train":
        kinds.append(("sample_wise", "data.n_train"))
    if trained:
        kinds.append(("epoch_wise", "epoch"))
    if spec.trials[0].data.TABLE:  # modular arithmetic: grokking curves against steps
        kinds.append(("grokking", "step"))
    return kinds


def series_order(key: tuple) -> tuple:
    """Sort key for series values: numbers in numeric order, before strings."""
    return tuple(
        (0, float(v), "") if isinstance(v, (int, float, np.number)) else (1, 0.0, str(v))
        for v in key
    )


def mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and the 95% Student-t interval over seeds (the interval collapses for one seed)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def build_curves(rows: pa.Table, spec: Spec, kind: str, x: str) -> CurveSet:
    """Aggregate ``rows`` into curves along ``x`` (a config path, or the ``epoch`` column).

    The series are the other swept axes, except those that move with ``x`` (zipped with it:
    one value per x), which are coordinates of the same path, not separate curves.
    """
    x_col = column_name(x)
    series = tuple(
        a
        for a in spec.axes
        if a not in (x, "seed") and not _moves_with(rows, column_name(a), x_col)
    )
    series_cols = [column_name(s) for s in series]
    metrics = [
        m
        for m in (*METRICS, *ACCURACIES)
        if m in rows.column_names
        and m not in (x_col, "diverged_step")
        and rows[m].null_count < len(rows)
        and not pa.types.is_list(rows[m].type)
    ]
    data = {
        c: rows[c].to_numpy(zero_copy_only=False)
        for c in dict.fromkeys([x_col, "seed", *series_cols, *metrics])
    }
    keys = (
        list(zip(*(data[c] for c in series_cols), strict=True)) if series_cols else [()] * len(rows)
    )
    point_records, seed_records, landmark_records = [], [], []
    threshold_metric, tol = defaults(spec)
    for key in sorted(set(keys), key=series_order):
        in_series = np.array([k == key for k in keys])
        xs = np.unique(data[x_col][in_series])
        means: dict[str, np.ndarray] = {}
        for m in metrics:
            column = data[m][in_series].astype(float)
            m_means = []
            for xv in xs:
                here = (data[x_col][in_series] == xv) & ~np.isnan(column)
                vals = column[here]
                if len(vals) == 0:
                    m_means.append(np.nan)
                    continue
                seed_records += [
                    {
                        **dict(zip(series_cols, key, strict=True)),
                        "x": float(xv),
                        "metric": m,
                        "seed": int(seed),
                        "value": float(v),
                    }
                    for seed, v in zip(data["seed"][in_series][here], vals, strict=True)
                ]
                mean, lo, hi = mean_ci(vals)
                m_means.append(mean)
                point_records.append(
                    {
                        **dict(zip(series_cols, key, strict=True)),
                        "x": float(xv),
                        "metric": m,
                        "mean": mean,
                        "ci_low": lo,
                        "ci_high": hi,
                        "n_seeds": len(vals),
                    }
                )
            means[m] = np.array(m_means)
        sample_wise = kind == "sample_wise"
        locate = emc_value if sample_wise else interpolation_threshold
        threshold = locate(xs, means[threshold_metric], tol) if threshold_metric in means else None
        landmark = {**dict(zip(series_cols, key, strict=True)), "threshold_x": threshold}
        for m in PEAK_METRICS:
            if m in means:
                i = (sample_peak_index if sample_wise else peak_index)(xs, means[m], threshold)
                landmark[f"{m}_peak_x"] = float(xs[i]) if i is not None else None
                landmark[f"{m}_peak"] = float(means[m][i]) if i is not None else None
        landmark_records.append(landmark)
    return CurveSet(
        kind=kind,
        x=x,
        series=series,
        points=pa.Table.from_pylist(point_records),
        per_seed=pa.Table.from_pylist(seed_records),
        landmarks=pa.Table.from_pylist(landmark_records),
    )


def _moves_with(rows: pa.Table, axis_col: str, x_col: str) -> bool:
    if axis_col not in rows.column_names or x_col not in rows.column_names:
        return False
    pairs = set(zip(rows[x_col].to_pylist(), rows[axis_col].to_pylist(), strict=True))
    return len(pairs) == len({x for x, _ in pairs}) and len({a for _, a in pairs}) > 1


def effective_table(curves: CurveSet) -> pa.Table | None:
    """Per curve point, the mean ``p_eff_test`` beside the mean test losses, in x order: the
    raw-count curve redrawn against effective parameters (Curth et al. 2023); None when the
    sweep measured no effective parameters (trained networks)."""
    series_cols = [column_name(s) for s in curves.series]
    wanted = ("p_eff_test", *EFFECTIVE_METRICS)
    points: dict[tuple, dict] = {}
    for r in curves.points.to_pylist():
        if r["metric"] in wanted:
            key = (*(r[c] for c in series_cols), r["x"])
            blank = {**{c: r[c] for c in series_cols}, "x": r["x"], **dict.fromkeys(wanted)}
            points.setdefault(key, blank)[r["metric"]] = r["mean"]
    if not any(p["p_eff_test"] is not None for p in points.values()):
        return None
    return pa.Table.from_pylist([points[k] for k in sorted(points, key=series_order)])


def interpolation_threshold(xs: np.ndarray, train_metric: np.ndarray, tol: float) -> float | None:
    """The smallest x whose mean train metric is below ``tol`` (None if none is)."""
    below = np.flatnonzero(np.nan_to_num(train_metric, nan=np.inf) < tol)
    return float(xs[below[0]]) if len(below) else None


def peak_index(xs: np.ndarray, test_metric: np.ndarray, threshold: float | None) -> int | None:
    """Index of the test peak: the maximum at or right of the best point below the threshold.

    Without a threshold, the maximum right of the first local minimum.
    """
    y = np.nan_to_num(test_metric, nan=-np.inf)
    if len(y) == 0:
        return None
    if threshold is not None and np.any(xs < threshold):
        below = np.flatnonzero(xs < threshold)
        start = below[np.argmin(y[below])]
    else:
        rises = np.flatnonzero(np.diff(y) > 0)
        start = rises[0] if len(rises) else 0
    return int(start + np.argmax(y[start:]))


def emc_value(ns: np.ndarray, train_metric: np.ndarray, tol: float) -> float | None:
    """The largest n whose mean train metric is below ``tol`` (None if none is): Nakkiran et
    al.'s effective model complexity, read off the swept training-set sizes."""
    below = np.flatnonzero(np.nan_to_num(train_metric, nan=np.inf) < tol)
    return float(ns[below[-1]]) if len(below) else None


def sample_peak_index(ns: np.ndarray, test_metric: np.ndarray, emc: float | None) -> int | None:
    """Index of the sample-wise test peak: the maximum at or right of the best n at or below
    the EMC (the small-data left arm, high because data is scarce, is not the peak).

    Without an EMC, the maximum right of the first local minimum, as ``peak_index``.
    """
    y = np.nan_to_num(test_metric, nan=-np.inf)
    if len(y) == 0 or emc is None:
        return peak_index(ns, test_metric, None)
    fit = np.flatnonzero(ns <= emc)
    start = fit[np.argmin(np.nan_to_num(test_metric[fit], nan=np.inf))]
    return int(start + np.argmax(y[start:]))


def final_rows(rows: pa.Table) -> pa.Table:
    """Each trial's last evaluation point."""
    if "step" not in rows.column_names or len(rows) == 0:
        return rows
    last = rows.group_by("trial_id").aggregate([("step", "max")])
    lookup = dict(zip(last["trial_id"].to_pylist(), last["step_max"].to_pylist(), strict=True))
    keep = [
        lookup[t] == s
        for t, s in zip(rows["trial_id"].to_pylist(), rows["step"].to_pylist(), strict=True)
    ]
    return rows.filter(pa.array(keep))


def best_rows(rows: pa.Table, metric: str = "test_error") -> pa.Table:
    """Each trial's evaluation point with the lowest ``metric`` (the earliest on ties)."""
    if metric not in rows.column_names or len(rows) == 0:
        return final_rows(rows)
    best: dict[str, tuple[float, int, int]] = {}
    for i, (tid, value, step) in enumerate(
        zip(
            rows["trial_id"].to_pylist(),
            rows[metric].to_pylist(),
            rows["step"].to_pylist(),
            strict=True,
        )
    ):
        key = (np.inf if value is None else value, step, i)
        if tid not in best or key < best[tid]:
            best[tid] = key
    return rows.take(pa.array(sorted(i for _, _, i in best.values())))


def with_accuracies(rows: pa.Table) -> pa.Table:
    """The rows with train_accuracy and test_accuracy (1 - error) beside the errors: the
    grokking literature reads accuracies."""
    for accuracy in ACCURACIES:
        error = rows[accuracy.replace("accuracy", "error")]
        rows = rows.append_column(accuracy, pa.compute.subtract(pa.scalar(1.0), error))
    return rows


def sweep_curves(table: pa.Table, spec: Spec) -> tuple[list[CurveSet], int]:
    """Every curve the sweep supports, and the number of its trials left out (not ok)."""
    rows, left_out = current_rows(table, spec)
    selections = {
        "model_wise_best": best_rows(rows),
        "epoch_wise": rows,
        "grokking": with_accuracies(rows),
    }
    final = final_rows(rows)
    return [
        build_curves(selections.get(kind, final), spec, kind, x) for kind, x in curve_kinds(spec)
    ], left_out


# --------------------------------------------------------------------------- EMC

SAMPLE_AXES = ("data.n_train", "data.train_fraction")  # swept axes that set the training-set size
N_COLUMN = "data_n_train"


@dataclass(frozen=True)
class EmcSet:
    """The effective model complexity of one sweep over the training-set size."""

    axis: str  # the swept axis that sets n_train (data.n_train, or train_fraction on modular data)
    series: tuple[str, ...]  # the other swept axes (capacity first, as swept), one EMC each
    metric: str  # the train metric read, and the tolerance below which a training set is fit
    tol: float
    table: pa.Table  # series columns, [epoch], emc, emc_low, emc_high, n_seeds, censored
    grid: pa.Table  # series columns, [epoch], n_train, mean (the train metric over seeds)


def sample_axis(spec: Spec) -> str | None:
    """The swept axis that sets the training-set size (None if the sweep has none)."""
    return next((a for a in spec.axes if a in SAMPLE_AXES), None)


def emc_settings(spec: Spec) -> tuple[str, float]:
    """The train metric EMC reads and its tolerance: the threshold's, unless ``emc_tol``."""
    metric, tol = defaults(spec)
    return metric, tol if spec.curves.emc_tol is None else spec.curves.emc_tol


def emc_curves(rows: pa.Table, spec: Spec) -> EmcSet | None:
    """Per value of the other swept axes and per evaluation epoch (trained models), the EMC:
    the largest n_train whose mean train metric over seeds is below the tolerance.

    ``emc`` is null when no swept n_train is fit; ``censored`` when the largest one is (the
    EMC is at least that). ``emc_low`` / ``emc_high`` span the EMCs of the single seeds (a
    seed that fits none makes ``emc_low`` null). None when the sweep has no n_train axis.
    """
    axis = sample_axis(spec)
    metric, tol = emc_settings(spec)
    if axis is None or metric not in rows.column_names or len(rows) == 0:
        return None
    axis_col = column_name(axis)
    series = tuple(
        a
        for a in spec.axes
        if a not in (axis, "seed") and not _moves_with(rows, column_name(a), axis_col)
    )
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
        groups.setdefault(tuple(_plain(v) for v in key), []).append(i)
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
                "emc_low": min(reached) if len(reached) == len(per_seed) else None,
                "emc_high": max(reached) if reached else None,
                "n_seeds": len(per_seed),
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


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


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
