"""A query's result written out: CSV (nested values as JSON text), JSON lines, Parquet, a
file renamed into place, or the aligned table ``dd query`` prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dd.analysis.query import Limits, query_arrow
from dd.store.paths import as_store_path, parquet_bytes


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


def write_query(
    sql: str,
    root: str | Path,
    sweep: str | None,
    fmt: str,
    output: str,
    limits: Limits | None = None,
) -> int:
    """Write the result of ``sql`` to ``output`` (see ``serialize``) through a temporary file
    renamed into place; returns the row count."""
    from dd.store.paths import atomic_write_bytes

    table = query_arrow(sql, root, sweep, limits)
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
