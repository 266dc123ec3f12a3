"""What curve kinds share: the kind record, the curve set, means over seeds, row selections.

Pure functions of Arrow tables. A curve is a metric's mean over seeds, with a 95% Student-t
interval clipped to the metric's range (``RANGES``: an error cannot leave [0, 1], a loss
cannot go below 0, however few the seeds), at each value of an x axis (model-wise: a model
field; sample-wise: data.n_train), one curve per combination of the other swept axes (the
series); each seed's own curve is kept beside the mean. Where each curve's landmark
(threshold, EMC) and test peak lie is the kind's choice (``dd.analysis.curves.landmarks``);
no peak lies at an edge (``is_peak``).

Kind modules import this module and lower layers only, never ``dd.plan.sweep`` (which asks the
registry to check the ``curves:`` section) nor the registry; ``SweepSpec`` names what they
read of a spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from dd.analysis.curves.ranges import ACCURACIES, mean_ci, metric_range
from dd.analysis.curves.wide import wide_points
from dd.store.schema import METRICS, column_name

PEAK_METRICS = ("test_error", "test_mse", "population_risk", "coef_norm")  # peaks located


class SweepSpec(Protocol):
    """What curve kinds read of a ``dd.plan.sweep.Spec``."""

    name: str
    trials: tuple[Any, ...]
    axes: tuple[str, ...]
    curves: Any  # dd.plan.sweep.Curves


@dataclass(frozen=True)
class Section:
    """A table of the report: ``landmark`` ones sit under "Thresholds and peaks" (h3), the
    others get their own heading after the figures."""

    heading: str
    table: pa.Table
    landmark: bool


@dataclass(frozen=True)
class CurveKind:
    """One kind of curve, registered in ``dd.analysis.curves.registry``.

    ``axis(spec)``: what it is drawn against, None when it does not apply to the sweep
    (``needs`` says when it does). ``compute(rows, spec, earlier)``: its result from the
    spec's ok rows (``earlier``: the results of the kinds before it in the registry, by
    name), None when the rows hold nothing for it. ``tables(result)``: {file stem: table}
    for ``curves/``; ``figures(result, spec)``: {file name: Figure} for ``figures/``;
    ``summary(result)``: terminal lines; ``sections(result)``: report tables;
    ``check(curves, axes, trial)``: raise SpecError for a ``curves:`` field it reads that
    names no metric or swept axis. ``curve_set``: its result is a ``CurveSet`` (the curves
    ``dd.api.curves`` returns), not a table of its own. ``verdict(result)``: one line of what
    the sweep found (``dd.analysis.curves.verdict``), printed after every kind's lines.
    ``lead``: what the report opens with when this kind is the sweep's finding (``Lead``).
    ``tiny``: a small sweep (a spec mapping) the kind applies to, which the per-kind tests
    aggregate from fabricated rows (built-in ones: ``dd.analysis.curves.tiny``).
    """

    name: str
    needs: str
    axis: Callable[[SweepSpec], str | None]
    compute: Callable[[pa.Table, SweepSpec, Mapping[str, Any]], Any]
    tables: Callable[[Any], dict[str, pa.Table]]
    figures: Callable[[Any, SweepSpec], dict[str, Any]]
    summary: Callable[[Any], list[str]]
    sections: Callable[[Any], list[Section]]
    check: Callable[[Any, list[str], Any], None]
    curve_set: bool = True
    verdict: Callable[[Any], list[str]] = lambda result: []  # what it found, said last
    lead: Any = None  # a dd.analysis.curves.lead.Lead
    tiny: Mapping[str, Any] | None = None

    def why_not(self, spec: SweepSpec) -> str | None:
        """Why the kind is not drawn for ``spec`` (None when it applies)."""
        if self.axis(spec) is not None:
            return None
        return f"{self.name}: does not apply to {spec.name}; it needs {self.needs}"


@dataclass(frozen=True)
class CurveSet:
    """Curves of one kind (model-wise or sample-wise) of one sweep."""

    kind: str
    x: str  # the dotted config path on the x axis
    series: tuple[str, ...]  # the other swept axes, one curve per combination of their values
    points: pa.Table  # series columns, x, metric, mean, ci_low, ci_high, n_seeds
    per_seed: pa.Table  # series columns, x, metric, seed, value: the curves of single seeds
    landmarks: pa.Table  # series columns, threshold_x, and per test metric peak_x / peak_value
    added: tuple[float, ...] = ()  # x values a refinement added (``refine:``), marked in figures
    seeded: tuple[float, ...] = ()  # x values where a refinement added seeds, marked likewise

    def wide(self) -> pa.Table:
        """``points`` with one row per series and x and a column per metric, with its
        ``_ci_low``, ``_ci_high`` and ``_n_seeds`` columns (``dd.analysis.curves.wide``)."""
        return wide_points(self.points, [column_name(s) for s in self.series])


def no_check(curves, axes: list[str], trial) -> None:
    """For kinds that read no ``curves:`` field of their own."""


def defaults(spec: SweepSpec) -> tuple[str, float]:
    """The threshold metric and tolerance: the spec's, else by model and task (see ``Curves``)."""
    trial = spec.trials[0]
    by_error = trial.data.CLASSIFICATION and trial.model.SECTION == "train"  # fits regress
    metric = spec.curves.threshold_metric or ("train_error" if by_error else "train_mse")
    tol = spec.curves.threshold_tol
    if tol is None:
        tol = 0.01 if metric.endswith("error") else 1e-6
    return metric, tol


def test_metric(spec: SweepSpec) -> str:
    """The sweep's test metric, on which a trial's best epoch is chosen: test_error for a
    classification task, test_mse for a regression one (its test_error is null)."""
    return "test_error" if spec.trials[0].data.CLASSIFICATION else "test_mse"


def trained(spec: SweepSpec) -> bool:
    """Whether the sweep's models are trained (networks) rather than fitted in closed form."""
    return spec.trials[0].model.SECTION == "train"


def series_order(key: tuple) -> tuple:
    """Sort key for series values: numbers in numeric order, before strings."""
    return tuple(
        (0, float(v), "") if isinstance(v, (int, float, np.number)) else (1, 0.0, str(v))
        for v in key
    )


def is_peak(mean: np.ndarray, i: int) -> bool:
    """Whether point ``i`` of a mean curve can be a peak: not an edge (nothing shows a rise
    before the first x or a fall after the last), above the lowest point before it and above
    the last point."""
    if not 0 < i < len(mean) - 1:
        return False
    return bool(mean[i] > np.nanmin(mean[:i]) and mean[i] > mean[-1])


def plain(value):
    """A numpy scalar as the Python value Arrow and JSON take."""
    return value.item() if isinstance(value, np.generic) else value


def series_axes(spec: SweepSpec, rows: pa.Table, x: str) -> tuple[str, ...]:
    """The swept axes other than ``x`` and seed, except those that move with ``x`` (zipped
    with it: one value per x), which are coordinates of the same path, not separate curves."""
    x_col = column_name(x)
    return tuple(
        a
        for a in spec.axes
        if a not in (x, "seed") and not _moves_with(rows, column_name(a), x_col)
    )


def build_curves(
    rows: pa.Table,
    spec: SweepSpec,
    kind: str,
    x: str,
    *,
    landmark: Callable[[np.ndarray, np.ndarray, float], float | None],
    peak: Callable[[np.ndarray, np.ndarray, float | None], int | None],
) -> CurveSet:
    """Aggregate ``rows`` into curves along ``x`` (a config path, or the ``epoch`` column).

    Per series, ``landmark(xs, mean threshold metric, tol)`` is its ``threshold_x`` and
    ``peak(xs, mean test metric, threshold_x)`` the index of each metric's located peak; a
    peak that ``is_peak`` rejects (at the first or last x, say) is none (null in the table).
    """
    x_col = column_name(x)
    series = series_axes(spec, rows, x)
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
                mean, lo, hi = mean_ci(vals, metric_range(m))
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
        threshold = (
            landmark(xs, means[threshold_metric], tol) if threshold_metric in means else None
        )
        mark = {**dict(zip(series_cols, key, strict=True)), "threshold_x": threshold}
        for m in PEAK_METRICS:
            if m in means:
                i = peak(xs, means[m], threshold)
                if i is not None and not is_peak(means[m], i):
                    i = None
                mark[f"{m}_peak_x"] = float(xs[i]) if i is not None else None
                mark[f"{m}_peak"] = float(means[m][i]) if i is not None else None
        landmark_records.append(mark)
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
    """Each trial's evaluation point with the lowest ``metric`` (the earliest on ties; a
    sweep's own is ``test_metric(spec)``)."""
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
    import pyarrow.compute as pc  # loads with the curves only: ``dd status`` checks specs

    for accuracy in ACCURACIES:
        error = rows[accuracy.replace("accuracy", "error")]
        rows = rows.append_column(accuracy, pc.subtract(pa.scalar(1.0), error))
    return rows


def capacity_axis(spec: SweepSpec) -> str | None:
    """The model-wise x: ``curves.x`` unless it is data.n_train, else the first swept model
    field (model.name, a choice of family, is not a capacity)."""
    if spec.curves.x and spec.curves.x != "data.n_train":
        return spec.curves.x
    return next((a for a in spec.axes if a.startswith("model.") and a != "model.name"), None)


def curve_tables(curves: CurveSet) -> dict[str, pa.Table]:
    """A curve set's files: ``<kind>``, ``<kind>_seeds`` and ``<kind>_landmarks``."""
    return {
        curves.kind: curves.points,
        f"{curves.kind}_seeds": curves.per_seed,
        f"{curves.kind}_landmarks": curves.landmarks,
    }


def landmark_sections(curves: CurveSet) -> list[Section]:
    """The landmarks table under "Thresholds and peaks" (none when there are no series)."""
    if not len(curves.landmarks):
        return []
    return [Section(f"{curves.kind} (x = {curves.x})", curves.landmarks, landmark=True)]


def told_nowhere(result) -> list:
    """For kinds with no lines or report sections of their own."""
    return []
