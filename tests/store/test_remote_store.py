"""Results in an object store: a real S3-compatible server (moto's standalone server, a
separate process on loopback) takes the packs that Ray workers write, and every reader
(``dd status``, ``dd curves``, ``dd query``, a resumed ``dd sweep``) reads them back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from dd.plan.sweep import load_spec
from dd.spec.errors import StoreError
from dd.spec.ids import trial_id
from dd.store.paths import RemotePath, as_store_path, atomic_write_bytes
from dd.store.sweep import SweepStore
from helpers import CREDENTIALS, TINY_GAUSSIAN, run_dd


def _keys(uri: str) -> list[str]:
    root = as_store_path(uri)
    selector = pafs.FileSelector(root.path, recursive=True, allow_not_found=True)
    return sorted(
        i.path[len(root.path) + 1 :]
        for i in root.fs.get_file_info(selector)
        if i.type == pafs.FileType.File
    )


def _dd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_dd(*args, cwd=cwd, env=CREDENTIALS)


@pytest.mark.ray
def test_workers_write_packs_to_the_object_store_and_every_reader_reads_them(
    results_uri, write_spec, tmp_path
):
    spec_path = write_spec(TINY_GAUSSIAN)
    planned = {trial_id(t) for t in load_spec(spec_path).trials}

    run = _dd("sweep", str(spec_path), "--results", results_uri, "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr

    keys = _keys(results_uri)
    packs = [k for k in keys if k.startswith("tiny/packs/pack-") and k.endswith(".parquet")]
    assert packs, keys
    assert not [k for k in keys if "/.tmp-" in k], "no temporary key left behind"
    assert "tiny/spec.yaml" in keys
    assert {"tiny/curves/model_wise.parquet", "tiny/figures/model_wise.png"} <= set(keys)
    png = (as_store_path(results_uri) / "tiny" / "figures" / "model_wise.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert SweepStore(results_uri, "tiny").stored_trial_ids() == planned
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"], "nothing written locally"

    status = _dd("status", "tiny", "--results", results_uri, cwd=tmp_path)
    assert status.returncode == 0 and f"{len(planned)} done" in status.stdout, status.stdout

    query = _dd(
        "query",
        "SELECT count(DISTINCT trial_id) AS n, count(*) AS rows FROM trials",
        "--sweep",
        "tiny",
        "--results",
        results_uri,
        "--format",
        "csv",
        cwd=tmp_path,
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines()[1] == f"{len(planned)},{len(planned)}"

    again = _dd("sweep", str(spec_path), "--results", results_uri, cwd=tmp_path)
    assert again.returncode == 0 and "nothing to run" in again.stderr, again.stderr


@pytest.mark.slow
def test_a_failed_move_leaves_neither_the_key_nor_its_temporary(results_uri, monkeypatch):
    target = as_store_path(results_uri) / "s" / "packs" / "pack-a.parquet"
    assert isinstance(target, RemotePath)

    def refuse(self, other):
        raise OSError("connection reset")

    monkeypatch.setattr(RemotePath, "replace", refuse)
    with pytest.raises(StoreError, match="cannot write"):
        atomic_write_bytes(target, b"rows")
    assert _keys(results_uri) == []


def test_a_corrupt_pack_in_the_store_is_moved_aside_not_read(results_uri):
    store = SweepStore(results_uri, "s")
    atomic_write_bytes(store.pack_path("bad"), b"not parquet")
    assert store.stored_trial_ids() == set()
    keys = _keys(results_uri)
    assert not [k for k in keys if k.startswith("s/packs/")]
    assert [k for k in keys if k.startswith("s/corrupt/pack-bad.parquet.")]


def test_an_unopenable_results_uri_is_one_clear_error():
    with pytest.raises(StoreError, match="--results nosuch://x: not a results location"):
        as_store_path("nosuch://x")


@pytest.mark.slow
def test_a_running_packs_rows_so_far_are_read_from_the_object_store(results_uri):
    """Partial rows on S3: while a pack runs its rows so far are a partial file there that
    dd query reads (partial true) and resume does not count; the final file supersedes it."""
    from dd.analysis.query import query_arrow
    from dd.engine import hooks
    from dd.plan.packs import make_packs
    from dd.plan.sweep import parse_spec
    from dd.run.worker import run_pack

    mapping = {
        "name": "live",
        "data": {"name": "digits", "n_train": 100},
        "model": {"name": "mlp", "width": 4},
        "train": {"batch_size": 50, "epochs": 3, "eval_points": 3},
        "grid": {"seed": [0, 1]},
    }
    spec = parse_spec(mapping)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    store = SweepStore(results_uri, "live")
    store.write_spec(spec.mapping)
    seen = []

    def look(store, pack_id, epoch):
        if not seen:
            rows = query_arrow("SELECT partial FROM results", results_uri, "live")
            seen.append((rows.num_rows, all(rows["partial"].to_pylist()), store.stored_trial_ids()))

    remove = hooks.add("after_evaluation", look)
    try:
        run_pack("live", results_uri, pack, spec.resources)
    finally:
        remove()
    assert seen == [(2, True, set())], "two trials' first rows, partial, none stored"
    keys = _keys(results_uri)
    assert not [k for k in keys if k.startswith("live/partial/")], "superseded by the final file"
    final = query_arrow("SELECT partial FROM results", results_uri, "live")
    assert final.num_rows == 2 * 3 and not any(final["partial"].to_pylist())
