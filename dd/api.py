"""The Python API for notebooks: a sweep's rows, trials and curves as Arrow tables.

    >>> from dd import api
    >>> rows = api.load("mnist1d_mlp")                 # one row per (trial, evaluation)
    >>> api.query("SELECT model_width, avg(test_error) FROM trials GROUP BY 1")
    >>> api.curves("mnist1d_mlp")["model_wise"].points  # mean and 95% interval per width
    >>> api.load("mnist1d_mlp").to_pandas()           # with pandas installed

``results`` is the results root (default: $DD_RESULTS, else ./results), as for the CLI.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from dd.aggregate import load_stored_spec, stored_rows
from dd.curves import CurveSet, current_rows, sweep_curves
from dd.query import query_arrow
from dd.store import SweepStore, default_results_root


def _store(sweep: str, results: str | Path | None) -> SweepStore:
    return SweepStore(results or default_results_root(), sweep)


def load(sweep: str, results: str | Path | None = None, *, current: bool = True) -> pa.Table:
    """The sweep's stored rows: of its current spec's ok trials (``current``, as the curves
    see them), or every stored row, other spec versions and diverged trials included."""
    store = _store(sweep, results)
    table = stored_rows(store)
    if not current:
        return table
    return current_rows(table, load_stored_spec(store))[0]


def query(sql: str, sweep: str | None = None, results: str | Path | None = None) -> pa.Table:
    """DuckDB ``sql`` over the views ``results`` and ``trials`` (see ``dd.query``) of one
    sweep, or of every sweep under the results root."""
    return query_arrow(sql, results or default_results_root(), sweep)


def curves(sweep: str, results: str | Path | None = None) -> dict[str, CurveSet]:
    """The sweep's curve sets by kind (model_wise, epoch_wise, grokking, ...), computed from
    its stored rows for its current spec; nothing is written."""
    store = _store(sweep, results)
    table = stored_rows(store)
    sets, _ = sweep_curves(table, load_stored_spec(store))
    return {c.kind: c for c in sets}
