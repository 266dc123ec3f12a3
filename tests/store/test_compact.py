"""Merged pack files (issue 34, item 1): a sweep's many small packs rewritten as a few merged
files answer every read as the packs did; a merge stopped between any two of its steps loses
nothing and the next writing command finishes it; a reader running while a merge happens
reads each row once; the same on an object store (moto's S3 server on loopback)."""

from __future__ import annotations

import copy
import shutil
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from dd.analysis import query
from dd.analysis.query import run_query
from dd.plan.sweep import parse_spec
from dd.spec.ids import trial_id
from dd.store.compact import compact, compact_locked, drop_merged_packs, merge_packs
from dd.store.sweep import SweepStore
from helpers import TINY_GAUSSIAN, run_dd, store_packs

ROWS = "SELECT trial_id, step, pack_id, test_mse FROM all_results ORDER BY trial_id, step"


def _rows(store: SweepStore) -> list[tuple]:
    table = store.read_results()
    keep = table.select(["trial_id", "step", "pack_id", "test_mse"]).to_pylist()
    return sorted(tuple(r.values()) for r in keep)


@pytest.fixture
def packs(tmp_path) -> tuple[SweepStore, list[tuple]]:
    """A sweep of 24 one-trial packs (3 rows each) and its rows as the packs hold them."""
    store_packs(tmp_path / "r", TINY_GAUSSIAN)
    store = SweepStore(tmp_path / "r", "tiny")
    assert len(store.pack_files()) == 24
    return store, _rows(store)


def _planned() -> set[str]:
    return {trial_id(t) for t in parse_spec(TINY_GAUSSIAN).trials}


def _reads_once(store: SweepStore, rows: list[tuple]) -> None:
    """Every reader sees each stored row once: the rows, resume's stored ids, ``dd query``."""
    assert _rows(store) == rows
    assert store.stored_trial_ids() == _planned()
    assert run_query(ROWS, store.root, "tiny")[1] == rows
    assert run_query("SELECT count(*) FROM trials", store.root, "tiny")[1] == [(24,)]


def test_compaction_leaves_few_files_and_the_same_rows(packs):
    store, rows = packs
    assert compact(store) == 24
    assert store.pack_files() == []
    merged = list(store.merged_files())
    assert len(merged) == 1
    table = pq.read_table(merged[0])
    keys = list(zip(table["trial_id"].to_pylist(), table["step"].to_pylist(), strict=True))
    assert keys == sorted(keys), "rows sorted by trial and step"
    assert set(table["pack_id"].to_pylist()) == {f"{i:04d}" for i in range(24)}
    _reads_once(store, rows)
    assert compact(store) == 0, "nothing left to merge"


@pytest.mark.slow
def test_a_merge_stopped_after_its_merged_file_is_finished_by_the_next_command(packs):
    store, rows = packs
    merge_packs(store, store.pack_files()[:10])  # steps 1-2; the packs are not yet removed
    assert len(store.pack_files()) == 24
    _reads_once(store, rows)
    with store.driver_lock():  # the next dd sweep (or dd migrate) starts by finishing it
        pass
    assert len(store.pack_files()) == 14
    _reads_once(store, rows)


@pytest.mark.slow
def test_a_merge_stopped_while_removing_its_packs_is_finished_by_the_next_command(packs):
    store, rows = packs
    merge_packs(store, store.pack_files()[:10])
    for path in store.pack_files()[:4]:  # step 3 stopped after 4 of its 10 removals
        path.unlink()
    _reads_once(store, rows)
    assert compact_locked(store) == 14
    assert store.pack_files() == [] and len(store.merged_files()) == 2
    _reads_once(store, rows)


@pytest.mark.slow
def test_a_merge_stopped_while_writing_leaves_a_temporary_file_the_next_command_removes(packs):
    store, rows = packs
    store.merged_dir.mkdir()
    stray = store.merged_dir / ".tmp-merged-0123456789abcdef.parquet-x1y2z3"
    stray.write_bytes(b"PAR1 half a merged file")
    _reads_once(store, rows)
    with store.driver_lock():
        pass
    assert not stray.exists() and len(store.pack_files()) == 24
    _reads_once(store, rows)


def test_a_reader_whose_packs_are_merged_away_before_it_reads_them_reads_each_row_once(
    packs, monkeypatch
):
    store, rows = packs
    listed = store.result_files
    merges = []

    def list_then_merge(partial: bool = False):
        files = listed(partial)
        if not merges:  # the merge runs between the reader's listing and its reads
            merges.append(compact(SweepStore(store.root, "tiny")))
        return files

    monkeypatch.setattr(store, "result_files", list_then_merge)
    assert _rows(store) == rows and merges == [24]


def test_a_query_whose_packs_are_merged_away_before_it_runs_reads_each_row_once(packs, monkeypatch):
    store, rows = packs
    opened = query.connect
    merges = []

    def connect_then_merge(*args, **kwargs):
        con = opened(*args, **kwargs)
        if not merges:  # the views name the packs; the merge removes them before the SQL
            merges.append(compact(SweepStore(store.root, "tiny")))
        return con

    monkeypatch.setattr(query, "connect", connect_then_merge)
    assert run_query(ROWS, store.root, "tiny")[1] == rows and merges == [24]


@pytest.mark.slow
def test_readers_during_merges_on_another_thread_read_each_row_once(packs):
    store, rows = packs
    done = threading.Event()

    def merge_two_at_a_time() -> None:
        writer = SweepStore(store.root, "tiny")
        try:
            while files := writer.pack_files():
                merge_packs(writer, files[:2])
                drop_merged_packs(writer)
        finally:
            done.set()

    merge_packs(store, store.pack_files()[:2])  # first here: the modules a merge imports
    drop_merged_packs(store)  # load on this thread (CPython 3.11 compiles badly on two at once)
    _reads_once(store, rows)
    thread = threading.Thread(target=merge_two_at_a_time)
    thread.start()
    reads = 0
    while not done.is_set() or reads == 0:
        reader = SweepStore(store.root, "tiny")
        assert _rows(reader) == rows
        assert reader.stored_trial_ids() == _planned()
        reads += 1
    thread.join()
    assert store.pack_files() == [] and len(store.merged_files()) == 12
    _reads_once(store, rows)


def test_the_partial_file_of_a_merged_pack_is_superseded_not_stale(packs):
    store, _ = packs
    store.write_partial("0000", pq.read_table(store.pack_files()[0]))
    compact(store)
    assert store.stale_partial_files() == [] and store.stale_trial_ids() == set()


@pytest.mark.slow
def test_a_compacted_store_on_s3_reads_as_before_and_a_stopped_merge_loses_nothing(
    results_uri,
):
    store_packs(results_uri, TINY_GAUSSIAN)
    store = SweepStore(results_uri, "tiny")
    rows = _rows(store)
    merge_packs(store, store.pack_files()[:10])  # stopped before its packs were removed
    assert len(store.pack_files()) == 24
    _reads_once(store, rows)
    assert compact_locked(store) == 14
    assert store.pack_files() == [] and len(store.merged_files()) == 2
    assert not [p for p in store.merged_dir.iterdir() if p.name.startswith(".tmp-")]
    _reads_once(store, rows)


# ---- a real sweep: the driver merges, resume and added values see merged trials


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny closed-form sweep in 6 packs of 4 trials (too few for the driver to
    merge), made once."""
    folder = tmp_path_factory.mktemp("finished")
    spec = folder / "tiny.yaml"
    spec.write_text(yaml.safe_dump({**TINY_GAUSSIAN, "resources": {"max_pack": 4}}))
    done = run_dd("sweep", spec, "--results", folder / "r", "--quiet", "--no-curves")
    assert done.returncode == 0, done.stderr
    assert len(list((folder / "r" / "tiny" / "packs").glob("pack-*.parquet"))) == 6
    return folder / "r"


def _answers(root: Path) -> list[str]:
    said = []
    for sql in (
        ROWS,
        "SELECT * FROM results ORDER BY trial_id, step",
        "SELECT * FROM trials ORDER BY trial_id",
    ):
        done = run_dd("query", sql, "--sweep", "tiny", "--results", root, "--format", "csv")
        said.append(done.stdout + done.stderr)
    status = run_dd("status", "tiny", "--results", root)
    curves = run_dd("curves", "tiny", "--results", root)
    assert curves.returncode == 0, curves.stderr
    tables = sorted((root / "tiny" / "curves").glob("*.parquet"))
    assert tables
    return said + [status.stdout, *(str(pq.read_table(t).to_pylist()) for t in tables)]


@pytest.mark.slow
@pytest.mark.ray  # the sweep runs in a dd subprocess
def test_a_merged_store_answers_queries_status_and_curves_as_its_packs_did(finished, tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    shutil.copytree(finished, before)
    shutil.copytree(finished, after)
    migrate = run_dd("migrate", "tiny", "--results", after)
    assert migrate.returncode == 0, migrate.stderr
    assert "6 pack files merged" in migrate.stderr
    assert not list((after / "tiny" / "packs").glob("pack-*"))
    assert _answers(before) == _answers(after)


@pytest.mark.slow
@pytest.mark.ray
def test_the_driver_merges_many_packs_and_a_rerun_finds_their_trials(tmp_path):
    mapping = copy.deepcopy({**TINY_GAUSSIAN, "resources": {"max_pack": 1}})
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(mapping))
    root = tmp_path / "r"
    first = run_dd("sweep", spec, "--results", root, "--no-curves")
    assert first.returncode == 0, first.stderr
    assert "24 pack files merged" in first.stderr
    store = SweepStore(root, "tiny")
    assert store.pack_files() == [] and len(store.merged_files()) == 1
    again = run_dd("sweep", spec, "--results", root, "--no-curves")
    assert again.returncode == 0 and "nothing to run" in again.stderr, again.stderr
    mapping["grid"]["model.n_features"].append(18)  # a value added: only its 4 trials run
    spec.write_text(yaml.safe_dump(mapping))
    added = run_dd("sweep", spec, "--results", root, "--no-curves")
    assert added.returncode == 0, added.stderr
    assert "24 already stored; running 4 trials" in added.stderr
    assert store.stored_trial_ids() == {trial_id(t) for t in parse_spec(mapping).trials}
