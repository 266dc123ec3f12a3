"""A curve set's points in wide form, for plotting a metric without filtering: one row per
series and x, and per metric the columns ``<metric>``, ``<metric>_ci_low``,
``<metric>_ci_high`` and ``<metric>_n_seeds`` (the long table has one row per metric)."""

from __future__ import annotations

import pyarrow as pa

VALUES = {"mean": "", "ci_low": "_ci_low", "ci_high": "_ci_high", "n_seeds": "_n_seeds"}


def wide_points(points: pa.Table, series: list[str]) -> pa.Table:
    """``points`` (series columns, x, metric, mean, ci_low, ci_high, n_seeds) pivoted to one
    row per (series, x), metrics in their order of first appearance; null where a metric has
    no value at that x. A table with no ``metric`` column is returned as it is."""
    if "metric" not in points.column_names:
        return points
    keys = [c for c in series if c in points.column_names] + ["x"]
    records = points.to_pylist()
    metrics = list(dict.fromkeys(r["metric"] for r in records))
    rows: dict[tuple, dict] = {}
    for r in records:
        row = rows.setdefault(tuple(r[k] for k in keys), {k: r[k] for k in keys})
        for value, suffix in VALUES.items():
            row[r["metric"] + suffix] = r[value]
    fields = [points.schema.field(k) for k in keys] + [
        pa.field(m + suffix, points.schema.field(value).type)
        for m in metrics
        for value, suffix in VALUES.items()
    ]
    schema = pa.schema(fields)
    return pa.Table.from_pylist(list(rows.values()), schema=schema)
