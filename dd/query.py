"""DuckDB over stored results: a view ``results`` of every pack file of one or all sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dd.errors import DDError, StoreError
from dd.store import SweepStore


def pack_files(root: str | Path, sweep: str | None) -> list[Path]:
    """The pack files of ``sweep``, or of every sweep under ``root``."""
    root = Path(root)
    if sweep is not None:
        return SweepStore(root, sweep).pack_files()
    if not root.is_dir():
        return []
    return sorted(f for d in root.iterdir() if d.is_dir() and (d / "spec.yaml").is_file()
                  for f in SweepStore(root, d.name).pack_files())


def run_query(sql: str, root: str | Path, sweep: str | None = None) -> tuple[list[str], list[tuple]]:
    """Run ``sql`` with the view ``results``; returns column names and rows."""
    import duckdb

    files = pack_files(root, sweep)
    if not files:
        where = f"sweep {sweep!r}" if sweep else "any sweep"
        raise StoreError(f"{Path(root)}: no results stored for {where}")
    con = duckdb.connect()
    listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    con.execute(f"CREATE VIEW results AS SELECT * FROM read_parquet([{listing}], "
                "union_by_name = true)")
    try:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description] if cursor.description else []
        return columns, cursor.fetchall() if columns else []
    except duckdb.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DDError(f"query failed: {first}") from None


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
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
               for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)
