"""``dd query`` agrees with ``dd status`` on which sweep a row belongs to, keeps DuckDB's
hint in its one-line error, and calls an unknown sweep bad input (issue 32, item 8)."""

from __future__ import annotations

import shutil

from dd.cli import main
from helpers import TINY_GAUSSIAN, store_trials

SMALL = {**TINY_GAUSSIAN, "grid": {"model.n_features": [2, 5], "seed": [0, 1, 2]}}


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_sweep_folder_copied_under_a_new_name_is_queried_by_its_folder(tmp_path, capsys):
    store_trials(tmp_path, SMALL)
    shutil.copytree(tmp_path / "tiny", tmp_path / "copy")
    assert main(["status", "copy", "--results", str(tmp_path)]) == 0
    assert "6 done" in capsys.readouterr().out
    sql = "SELECT sweep, count(DISTINCT trial_id) AS n FROM results GROUP BY sweep ORDER BY sweep"
    root = ["--results", str(tmp_path), "--format", "csv"]
    assert main(["query", sql, "--sweep", "copy", *root]) == 0
    assert capsys.readouterr().out.split() == ['"sweep","n"', '"copy",6']
    assert main(["query", sql, *root]) == 0
    assert capsys.readouterr().out.split() == ['"sweep","n"', '"copy",6', '"tiny",6']


def test_a_misspelt_column_keeps_duckdbs_candidates_in_one_line(tmp_path, capsys):
    store_trials(tmp_path, SMALL)
    assert main(["query", "SELECT tset_error FROM results", "--results", str(tmp_path)]) == 2
    line = _error(capsys)
    assert '"tset_error" not found' in line and "Candidate bindings" in line, line
    assert '"test_error"' in line, line


def test_a_sweep_never_run_is_bad_input(tmp_path, capsys):
    store_trials(tmp_path, SMALL)
    assert main(["query", "SELECT 1", "--sweep", "never", "--results", str(tmp_path)]) == 2
    assert "never" in _error(capsys)


def test_a_stop_sent_before_duckdb_begins_the_query_still_stops_it():
    """Ctrl-C just after the query's thread started: DuckDB ignores an interrupt while no
    query runs, so one interrupt was lost and the query ran to its end (minutes; a test of a
    runaway query hung on a loaded machine). The stop interrupts again until the thread is out."""
    import threading

    import duckdb

    from dd.analysis.query import _stop

    con = duckdb.connect()
    begin, done, box = threading.Event(), threading.Event(), {}

    def run() -> None:
        begin.wait()
        try:
            con.execute("SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b")
        except BaseException as e:
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    threading.Timer(0.5, begin.set).start()  # the query begins after the first interrupt
    stopper = threading.Thread(target=_stop, args=(con, done), daemon=True)
    stopper.start()
    stopper.join(120)  # a guard against a hang, not a timing: the cross join takes hours
    assert not stopper.is_alive(), "the query ran on past its stop"
    assert isinstance(box.get("error"), duckdb.InterruptException)
