"""DuckDB over stored results of one sweep or of all sweeps.

Views, each with a ``current`` column (whether the trial belongs to its sweep's stored spec,
the plan ``dd status`` and the curves count; null where that spec cannot be loaded):
- ``results``: the current trials' rows, one per (trial, evaluation point);
- ``trials``: one row per current trial, its final evaluation point's columns plus
  ``n_evals``, ``best_test_error`` / ``best_test_error_step`` and ``best_test_mse`` /
  ``best_test_mse_step`` (the lowest value over its evaluation points, and where);
- ``all_results`` and ``all_trials``: the same over every stored row, trials of earlier
  versions of a spec (other epochs, a changed grid) included;
- ``stale``: the rows so far of packs that stopped without finishing (failed, cancelled,
  killed, their node lost: ``dd.store.live``), which no other view holds; rerun to finish.
- the derived tables, ``grok_times``, ``landmarks``, ``emc``, one per curve table
  (``dd.analysis.views``), each with its ``sweep``.

Rows so far of running packs are in every view but ``stale``, with ``partial`` true.

SQL runs read-only: once the views exist, DuckDB's external access is turned off and its
configuration locked, so a query reads the stored packs and curve tables and nothing else
(no ``COPY ... TO``, ``ATTACH``, ``read_csv`` of other files, extensions); ``--output`` is
the way to write a result. DuckDB would allow its temporary directory (``.tmp`` in the
working folder) too, so each query spills to a private folder of its own, made for it and
removed after it. A query runs within ``Limits`` (memory, threads, an optional timeout) and
stops on Ctrl-C or SIGTERM (``connection.interrupt()``). In CSV, list columns
(``fourier_norms``, ``key_freqs``) are JSON arrays.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dd.analysis.views import create_views
from dd.spec.errors import DDError, StoreError
from dd.store.compact import SNAPSHOTS
from dd.store.paths import RemotePath, StorePath, as_store_path
from dd.store.sweep import SweepStore, sweep_names

TRIALS_VIEW = """
CREATE VIEW {name} AS
WITH last AS (
    SELECT *, row_number() OVER (PARTITION BY sweep, trial_id ORDER BY step DESC) AS _rank
    FROM {rows}),
best AS (
    SELECT sweep, trial_id, count(*) AS n_evals,
           min(test_error) AS best_test_error, arg_min(step, test_error) AS best_test_error_step,
           min(test_mse) AS best_test_mse, arg_min(step, test_mse) AS best_test_mse_step
    FROM {rows} GROUP BY sweep, trial_id)
SELECT last.* EXCLUDE (_rank), best.* EXCLUDE (sweep, trial_id)
FROM last JOIN best USING (sweep, trial_id) WHERE _rank = 1
"""
MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one query may take: DuckDB's ``memory_limit`` (e.g. "4GB") and ``threads``, and
    a ``timeout`` in seconds (None: none). ``default_limits`` gives a safe share."""

    memory_limit: str
    threads: int
    timeout: float | None = None


def default_limits(
    memory_limit: str | None = None, threads: int | None = None, timeout: float | None = None
) -> Limits:
    """Half of this machine's memory and of its CPUs (at least one) unless given, so a
    runaway join cannot take the machine; a bad ``memory_limit`` names the flag."""
    if memory_limit is None:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        memory_limit = f"{max(1, total // 2 // 2**20)}MiB"
    elif not MEMORY.fullmatch(memory_limit.strip()):
        raise DDError(
            f"--memory-limit: {memory_limit!r} is not a size; give a number and a unit "
            "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 4GB"
        )
    if threads is None:
        threads = max(1, len(os.sched_getaffinity(0)) // 2)  # the CPUs this process may use
    return Limits(memory_limit=memory_limit.strip(), threads=threads, timeout=timeout)


class QueryStopped(DDError):
    """A query stopped by its ``timeout`` (exit 1: the query ran, and did not finish)."""

    exit_code = 1


def pack_files(root: str | StorePath, sweep: str | None, stale: bool = False) -> list[StorePath]:
    """The pack files of ``sweep``, or of every sweep under ``root``, and its running packs'
    partial files (``partial`` true); with ``stale``, the partial files of stopped packs."""
    root = as_store_path(root)
    names = [sweep] if sweep is not None else sweep_names(root)
    return sorted(f for name in names for f in _files(SweepStore(root, name), stale))


def _files(store: SweepStore, stale: bool) -> list[StorePath]:
    if stale:
        return store.stale_partial_files()
    return store.readable_pack_files() + store.partial_files()


def planned_trials(root: StorePath, files: list[StorePath]):
    """An Arrow table (sweep, trial_id) of the trials each sweep's stored spec plans, and the
    sweeps whose spec cannot be loaded (their rows' ``current`` is then null)."""
    import pyarrow as pa

    from dd.plan.states import load_plan

    sweeps, ids, unknown = [], [], []
    for name in sorted({f.parent.parent.name for f in files}):
        try:
            planned = list(load_plan(SweepStore(root, name)).trial_ids)
        except DDError as e:
            print(f"warning: {e}; the column current of its rows is null", file=sys.stderr)
            unknown.append(name)
            continue
        sweeps += [name] * len(planned)
        ids += planned
    columns = {"sweep": pa.array(sweeps, pa.string()), "trial_id": pa.array(ids, pa.string())}
    return pa.table(columns), unknown


@contextmanager
def session(
    root: str | StorePath, sweep: str | None, limits: Limits, used: list | None = None
) -> Iterator[Any]:
    """``connect``'s connection, spilling to a private temporary folder (mode 0700, outside
    the working folder) that is removed, with the connection, when the query ends; ``used``
    gets the files it reads."""
    with tempfile.TemporaryDirectory(prefix="dd-query-") as spill:
        con = connect(root, sweep, limits, spill=spill, used=used)
        try:
            yield con
        finally:
            con.close()


def connect(
    root: str | StorePath,
    sweep: str | None = None,
    limits: Limits | None = None,
    *,
    spill: str | None = None,
    used: list | None = None,
):
    """A DuckDB connection with the views ``results``, ``trials``, ``all_results``,
    ``all_trials`` and ``stale`` over stored packs, within ``limits`` (default
    ``default_limits()``).
    DuckDB's temporary directory, the one folder it allows besides the packs, is ``spill``;
    None: spilling is off (a query larger than ``limits.memory_limit`` fails). ``used``, a
    list, gets the files the views read.

    Local packs are scanned by DuckDB's own Parquet reader; packs in an object store through
    a ``pyarrow.dataset`` on its filesystem (DuckDB's S3 reader is an extension it would
    download), columns unified across files as ``union_by_name`` does locally.
    """
    import duckdb

    limits = limits or default_limits()
    root = as_store_path(root)
    files, stale = pack_files(root, sweep), pack_files(root, sweep, stale=True)
    if used is not None:
        used += files + stale
    if not files and not stale:
        if sweep is not None and not SweepStore(root, sweep).spec_path.is_file():
            raise DDError(  # an unknown sweep name is bad input: exit 2, as dd status says
                f"{root}: no sweep {sweep!r} here (no spec.yaml); run 'dd sweep' first "
                "or pass --results"
            )
        where = f"sweep {sweep!r}" if sweep else "any sweep"
        raise StoreError(f"{root}: no results stored for {where}")
    planned, unknown = planned_trials(root, files + stale)
    con = duckdb.connect()
    source, stale_source = _source(con, "stored", files), _source(con, "stale", stale)
    con.register("planned_trials", planned)
    unknown_sweeps = f"stored.sweep IN ({', '.join(map(_quote, unknown))})" if unknown else "false"
    try:
        for view, rows in (
            ("all_results", source or f"(SELECT * FROM {stale_source} WHERE false)"),
            ("stale", stale_source or f"(SELECT * FROM {source} WHERE false)"),
        ):
            con.execute(
                f"CREATE VIEW {view} AS SELECT stored.*, CASE WHEN {unknown_sweeps} THEN NULL "
                "ELSE planned.trial_id IS NOT NULL END AS current "
                f"FROM {rows} AS stored LEFT JOIN planned_trials AS planned "
                "ON stored.sweep = planned.sweep AND stored.trial_id = planned.trial_id"
            )
        con.execute("CREATE VIEW results AS SELECT * FROM all_results WHERE current")
    except duckdb.Error as e:
        raise StoreError(f"{root}: stored packs unreadable: {_failed(e)}") from None
    con.execute(TRIALS_VIEW.format(name="trials", rows="results"))
    con.execute(TRIALS_VIEW.format(name="all_trials", rows="all_results"))
    base = {"results", "trials", "all_results", "all_trials", "planned_trials", "stored_packs"}
    files += create_views(con, root, sorted({f.parent.parent.name for f in files}), base, unknown)
    con.execute(f"SET memory_limit = {_quote(limits.memory_limit)}")
    con.execute(f"SET threads = {int(limits.threads)}")
    con.execute(f"SET temp_directory = {_quote(spill or '')}")
    con.execute("SET allowed_directories = []")
    if not isinstance(root, RemotePath):
        con.execute(f"SET allowed_paths = [{', '.join(_quote(str(f)) for f in files + stale)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


INTERRUPT_AGAIN_S = 0.2  # how often a stopping query is interrupted again until it stops


def _interruptible(con, work: Callable[[], Any], timeout: float | None) -> Any:
    """``work()`` on a thread while this one waits: Ctrl-C or SIGTERM (a KeyboardInterrupt
    here; DuckDB would hold the main thread until the query ends) and the timeout stop the
    query with ``con.interrupt()``. The wait is on an event the worker sets, not on
    ``Thread.join``, which an interrupt can leave believing the thread has ended."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as e:  # handed to the waiting thread
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, name="dd-query", daemon=True).start()
    try:
        finished = done.wait(timeout)
    except KeyboardInterrupt:
        _stop(con, done)
        raise
    if not finished:
        _stop(con, done)
        raise QueryStopped(f"query: stopped after --timeout {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _stop(con, done: threading.Event) -> None:
    """Interrupt the running query, wait until its thread is out of DuckDB, and close the
    connection (a worker left inside DuckDB at exit aborts the process). The interrupt is
    repeated until the thread is out: one sent before DuckDB has begun the query (a Ctrl-C
    just after the thread started) would be lost, and the query would run to its end."""
    con.interrupt()
    while not done.wait(INTERRUPT_AGAIN_S):
        con.interrupt()
    con.close()


def _source(con, name: str, files: list[StorePath]) -> str | None:
    """The SQL that reads ``files`` (None for none), each row's ``sweep`` the folder its file
    lies in (the name ``dd status`` counts under: a sweep folder copied under a new name is
    that name's, whatever its rows stored): DuckDB's Parquet reader for local files, a
    registered ``pyarrow.dataset`` (``<name>_packs_<i>``) per sweep for an object store's."""
    if not files:
        return None
    by_sweep: dict[str, list[StorePath]] = {}
    for f in files:
        by_sweep.setdefault(f.parent.parent.name, []).append(f)
    parts = []
    for i, (sweep, group) in enumerate(sorted(by_sweep.items())):
        if isinstance(group[0], RemotePath):
            source = f"{name}_packs_{i}"
            con.register(source, _remote_packs(group))
        else:
            paths = ", ".join(_quote(str(f)) for f in group)
            source = f"read_parquet([{paths}], union_by_name = true)"
        parts.append(f"SELECT * REPLACE ({_quote(sweep)} AS sweep) FROM {source}")
    return f"({' UNION ALL BY NAME '.join(parts)})"


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
    """DuckDB's error in one line: its first line, with its hint of the names meant
    (``Candidate bindings: ...``, ``Did you mean ...``) where it gives one."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if not lines:
        return DDError(f"query failed: {type(e).__name__}")
    hints = [line for line in lines[1:] if line.startswith(("Candidate", "Did you mean"))]
    return DDError(f"query failed: {' '.join(lines[:1] + hints)}")


def _check_sql(sql: str) -> None:
    if not sql.replace(";", "").strip():
        raise DDError("query: empty SQL; give a statement, e.g. 'SELECT count(*) FROM results'")


def run_query(
    sql: str, root: str | Path, sweep: str | None = None, limits: Limits | None = None
) -> tuple[list[str], list[tuple]]:
    """Run ``sql`` over the views; returns column names and rows."""
    _check_sql(sql)

    def work(con) -> tuple[list[str], list[tuple]]:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description] if cursor and cursor.description else []
        return columns, cursor.fetchall() if columns else []

    return _run(root, sweep, limits or default_limits(), work)


def query_arrow(sql: str, root: str | Path, sweep: str | None = None, limits: Limits | None = None):
    """Run ``sql`` over the views; returns a pyarrow Table."""
    import pyarrow

    _check_sql(sql)

    def work(con):
        relation = con.sql(sql)
        if relation is None:  # a statement without a result
            return pyarrow.table({})
        # duckdb 2 names it to_arrow_table; 1.x returns the table from arrow()
        return (getattr(relation, "to_arrow_table", None) or relation.arrow)()

    return _run(root, sweep, limits or default_limits(), work)


def _run(root, sweep: str | None, limits: Limits, work: Callable[[Any], Any]) -> Any:
    """``work(connection)`` within ``limits``; a query that fails because a file it reads
    was merged away meanwhile (``dd.store.compact``) runs again over the files then stored."""
    import duckdb

    for attempt in range(SNAPSHOTS):
        used: list[StorePath] = []
        last = attempt + 1 == SNAPSHOTS
        try:
            with session(root, sweep, limits, used) as con:
                try:
                    return _interruptible(con, lambda: work(con), limits.timeout)
                except duckdb.Error as e:
                    if last or all(f.exists() for f in used):
                        raise _failed(e) from None
        except StoreError:
            if last or all(f.exists() for f in used):
                raise
    raise AssertionError("unreachable")  # the last attempt returns or raises
