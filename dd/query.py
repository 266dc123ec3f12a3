"""DuckDB over stored results of one sweep or of all sweeps.

Two views:
- ``results``: every pack file's rows, one per (trial, evaluation point);
- ``trials``: one row per trial, its final evaluation point's columns plus ``n_evals``,
  ``best_test_error`` / ``best_test_error_step`` and ``best_test_mse`` /
  ``best_test_mse_step`` (the lowest value over its evaluation points, and where).

SQL runs read-only: once the views exist, DuckDB's external access is turned off and its
configuration locked, so a query reads the stored packs and nothing else (no ``COPY ... TO``,
``ATTACH``, ``read_csv`` of other files, extensions); ``--output`` is the way to write a
result. In CSV, list columns (``fourier_norms``, ``key_freqs``) are JSON arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dd.errors import DDError, StoreError
from dd.store import SweepStore, sweep_names
from dd.store_paths import RemotePath, StorePath, as_store_path, parquet_bytes

TRIALS_VIEW = """
CREATE VIEW trials AS
WITH last AS (
    SELECT *, row_number() OVER (PARTITION BY sweep, trial_id ORDER BY step DESC) AS _rank
    FROM results),
best AS (
    SELECT sweep, trial_id, count(*) AS n_evals,
           min(test_error) AS best_test_error, arg_min(step, test_error) AS best_test_error_step,
           min(test_mse) AS best_test_mse, arg_min(step, test_mse) AS best_test_mse_step
    FROM results GROUP BY sweep, trial_id)
SELECT last.* EXCLUDE (_rank), best.* EXCLUDE (sweep, trial_id)
FROM last JOIN best USING (sweep, trial_id) WHERE _rank = 1
"""


def pack_files(root: str | StorePath, sweep: str | None) -> list[StorePath]:
    """The pack files of ``sweep``, or of every sweep under ``root``."""
    root = as_store_path(root)
    if sweep is not None:
        return SweepStore(root, sweep).readable_pack_files()
    return sorted(
        f for name in sweep_names(root) for f in SweepStore(root, name).readable_pack_files()
    )


def connect(root: str | StorePath, sweep: str | None = None):
    """A DuckDB connection with the views ``results`` and ``trials`` over stored packs.

    Local packs are scanned by DuckDB's own Parquet reader; packs in an object store through
    a ``pyarrow.dataset`` on its filesystem (DuckDB's S3 reader is an extension it would
    download), columns unified across files as ``union_by_name`` does locally.
    """
    import duckdb

    root = as_store_path(root)
    files = pack_files(root, sweep)
    if not files:
        where = f"sweep {sweep!r}" if sweep else "any sweep"
        raise StoreError(f"{root}: no results stored for {where}")
    con = duckdb.connect()
    if isinstance(root, RemotePath):
        con.register("stored_packs", _remote_packs(files))
        source = "stored_packs"
    else:
        source = f"read_parquet([{', '.join(_quote(str(f)) for f in files)}], union_by_name = true)"
    try:
        con.execute(f"CREATE VIEW results AS SELECT * FROM {source}")
    except duckdb.Error as e:
        raise StoreError(f"{root}: stored packs unreadable: {_failed(e)}") from None
    con.execute(TRIALS_VIEW)
    if not isinstance(root, RemotePath):
        con.execute(f"SET allowed_paths = [{', '.join(_quote(str(f)) for f in files)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _remote_packs(files: list[RemotePath]):
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    fs = files[0].fs
    schema = pa.unify_schemas(
        [pq.read_schema(f.path, filesystem=fs) for f in files], promote_options="permissive"
    )
    return ds.dataset([f.path for f in files], schema=schema, format="parquet", filesystem=fs)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _failed(e: Exception) -> DDError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return DDError(f"query failed: {first}")


def _check_sql(sql: str) -> None:
    if not sql.replace(";", "").strip():
        raise DDError("query: empty SQL; give a statement, e.g. 'SELECT count(*) FROM results'")


def run_query(
    sql: str, root: str | Path, sweep: str | None = None
) -> tuple[list[str], list[tuple]]:
    """Run ``sql`` over the views; returns column names and rows."""
    import duckdb

    _check_sql(sql)
    con = connect(root, sweep)
    try:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description] if cursor and cursor.description else []
        return columns, cursor.fetchall() if columns else []
    except duckdb.Error as e:
        raise _failed(e) from None


def query_arrow(sql: str, root: str | Path, sweep: str | None = None):
    """Run ``sql`` over the views; returns a pyarrow Table."""
    import duckdb
    import pyarrow

    _check_sql(sql)
    con = connect(root, sweep)
    try:
        relation = con.sql(sql)
        if relation is None:  # a statement without a result
            return pyarrow.table({})
        # duckdb 2 names it to_arrow_table; 1.x returns the table from arrow()
        return (getattr(relation, "to_arrow_table", None) or relation.arrow)()
    except duckdb.Error as e:
        raise _failed(e) from None


def serialize(table, fmt: str) -> bytes:
    """``table`` as csv (nested values as JSON text), json (one object per line, NaN as null)
    or parquet bytes."""
    import pyarrow
    import pyarrow.csv

    if fmt == "json":
        return json_lines(table).encode()
    if fmt == "parquet":
        return parquet_bytes(table)
    sink = pyarrow.BufferOutputStream()
    pyarrow.csv.write_csv(_flat(table), sink)
    return sink.getvalue().to_pybytes()


def _plain(value: Any) -> Any:
    """JSON for what ``json`` cannot encode: decimals as numbers, the rest (dates) as text."""
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else str(value)


def _flat(table):
    """``table`` with every nested column (list, struct, map) as JSON text, which CSV can hold."""
    import json

    import pyarrow

    for i, f in enumerate(table.schema):
        if pyarrow.types.is_nested(f.type):
            text = [
                None if v is None else json.dumps(v, default=_plain)
                for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, f.name, pyarrow.array(text, pyarrow.string()))
    return table


def write_query(sql: str, root: str | Path, sweep: str | None, fmt: str, output: str) -> int:
    """Write the result of ``sql`` to ``output`` (see ``serialize``) through a temporary file
    renamed into place; returns the row count."""
    from dd.store_paths import atomic_write_bytes

    table = query_arrow(sql, root, sweep)
    atomic_write_bytes(as_store_path(output), serialize(table, fmt))
    return len(table)


def json_lines(table) -> str:
    """One JSON object per row (NaN as null)."""
    import json
    import math

    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return "".join(
        json.dumps({k: clean(v) for k, v in row.items()}, default=str) + "\n"
        for row in table.to_pylist()
    )


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_table(columns: list[str], rows: list[tuple]) -> str:
    """An aligned text table (numbers right-aligned)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
        for i in range(len(columns))
    ]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)
