"""The aggregator's derived tables as query views beside ``results`` and ``trials``
(``dd.analysis.query``): one view per curve table the sweeps hold under
``<sweep>/curves/<table>.parquet`` (``grok_times``, ``emc``, ``model_wise``,
``epoch_wise_seeds``, ...), and ``landmarks``, every ``<kind>_landmarks`` table with its
``kind``. Each has a ``sweep`` column; a table with a ``trial_id`` column (``grok_times``)
also ``current``, as ``results`` has. The curve tables are those ``dd sweep`` or ``dd curves``
last wrote, from the spec current then. A view exists where at least one of the sweeps
queried holds its table: a sweep without it adds no rows, and the other views answer as
before. Views are lazy: a query that reads none of them reads no curve file.
"""

from __future__ import annotations

import sys

from dd.store.paths import RemotePath, StorePath, read_metadata, read_parquet
from dd.store.sweep import SweepStore

LANDMARKS = "_landmarks"


Files = list[tuple[str, StorePath, list[str]]]  # (sweep, curve file, its column names)


def curve_tables(root: StorePath, sweeps: list[str]) -> dict[str, Files]:
    """{table name: [(sweep, file, columns)]} of the curve tables of ``sweeps`` whose Parquet footer
    reads; an unreadable one is left out with a warning (a query writes nothing, so it is not
    moved: ``dd curves SWEEP`` writes it again)."""
    found: dict[str, Files] = {}
    for name in sorted(sweeps):
        folder = SweepStore(root, name).dir / "curves"
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.parquet")):
            try:
                names = read_metadata(path).schema.to_arrow_schema().names
            except (OSError, ValueError) as e:  # ArrowInvalid is a ValueError
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                print(
                    f"warning: {path}: unreadable curve table ({first}); left out of the "
                    f"views; 'dd curves {name}' writes it again",
                    file=sys.stderr,
                )
                continue
            found.setdefault(path.name[: -len(".parquet")], []).append((name, path, names))
    return found


def create_views(
    con, root: StorePath, sweeps: list[str], reserved: set[str], unknown: list[str]
) -> list[StorePath]:
    """Create the views on ``con`` (none named as one of ``reserved``); ``unknown``: the
    sweeps whose spec cannot be loaded (``current`` null). Returns the files the views read,
    for DuckDB's ``allowed_paths``."""
    null = f"d.sweep IN ({', '.join(map(_quote, unknown))})" if unknown else "false"
    tables = curve_tables(root, sweeps)
    read: list[StorePath] = []
    for table, files in tables.items():
        if table in reserved or table == "landmarks":
            continue
        body = _union(con, table, files, {}, read)
        if any("trial_id" in names for _, _, names in files):
            body = (
                f"SELECT d.*, CASE WHEN {null} THEN NULL "
                "ELSE p.trial_id IS NOT NULL END AS current "
                f"FROM ({body}) AS d LEFT JOIN planned_trials AS p "
                "ON d.sweep = p.sweep AND d.trial_id = p.trial_id"
            )
        con.execute(f"CREATE VIEW {_name(table)} AS {body}")
    marks = [
        (table[: -len(LANDMARKS)], file)
        for table, files in tables.items()
        if table.endswith(LANDMARKS)
        for file in files
    ]
    if marks and "landmarks" not in reserved:
        parts = [
            _union(con, f"landmarks_{i}", [f], {"kind": kind}, read)
            for i, (kind, f) in enumerate(marks)
        ]
        con.execute(f"CREATE VIEW landmarks AS {' UNION ALL BY NAME '.join(parts)}")
    return read


def _union(con, table: str, files: Files, constants: dict[str, str], read: list) -> str:
    """SQL for the rows of ``files`` stacked by column name, each with its
    ``sweep`` (and ``constants``) first. Local files are scanned by DuckDB (and added to
    ``read``); those of an object store are read here and registered (curve tables are
    small; DuckDB's S3 reader is an extension it would download)."""
    parts = []
    for i, (sweep, path, names) in enumerate(files):
        keep = "* EXCLUDE (sweep)" if "sweep" in names else "*"
        fixed = "".join(f"{_quote(v)} AS {k}, " for k, v in constants.items())
        if isinstance(path, RemotePath):
            source = f"_curve_{table}_{i}"
            con.register(source, read_parquet(path))
        else:
            source = f"read_parquet({_quote(str(path))})"
            read.append(path)
        parts.append(f"SELECT {_quote(sweep)} AS sweep, {fixed}{keep} FROM {source}")
    return " UNION ALL BY NAME ".join(parts)


def _name(table: str) -> str:
    return '"' + table.replace('"', '""') + '"'


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
