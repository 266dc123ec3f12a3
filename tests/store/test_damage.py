"""Damaged files anywhere in a stored sweep (and in the cost tables) are never trusted and never
give a traceback: each kind of file is truncated, garbled in the middle or given wrong types,
and every read command then says so in one line naming the file (issue 32, items 3-6)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from dd.cli import main
from dd.store.compact import drop_merged_packs, merge_packs
from dd.store.sweep import SweepStore
from helpers import TINY_GAUSSIAN, run_dd

READS = (
    ["status", "tiny"],
    ["status", "tiny", "--profile"],
    ["query", "SELECT count(*) FROM trials", "--sweep", "tiny"],
    ["curves", "tiny"],
    ["report", "tiny"],
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny closed-form sweep (4 packs, their profiles, a run record), made once."""
    folder = tmp_path_factory.mktemp("finished")
    spec = folder / "tiny.yaml"
    mapping = {**copy.deepcopy(TINY_GAUSSIAN), "resources": {"max_pack": 6}}
    spec.write_text(yaml.safe_dump(mapping, sort_keys=False))
    done = run_dd("sweep", spec, "--results", folder / "r", "--quiet", "--no-curves")
    assert done.returncode == 0, done.stderr
    return folder / "r"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _garble(path: Path) -> None:
    """XOR up to 4000 bytes in the middle (a third of a small file)."""
    data = bytearray(path.read_bytes())
    n = min(4000, len(data) // 3)
    start = (len(data) - n) // 2
    for i in range(start, start + n):
        data[i] ^= 0xA5
    path.write_bytes(bytes(data))


def _wrong_types(path: Path) -> None:
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        for name in {"step", "test_mse", "trial_id"} & set(table.column_names):
            i = table.schema.get_field_index(name)
            wrong = (
                pa.array(["abc"] * len(table))
                if name != "trial_id"
                else pa.array([1.5] * len(table))
            )
            table = table.set_column(i, name, wrong)
        pq.write_table(table, path)
    elif path.suffix == ".json":
        record = json.loads(path.read_text().split("\n", 1)[-1])  # with or without a header
        for key in ("wall_time_s", "phases", "programs_compiled", "bytes_to_host"):
            if key in record:
                record[key] = "abc"
        path.write_text(json.dumps(record))
    else:  # spec.yaml
        path.write_text("name: tiny\ngrid: nonsense\nmodel: 5\n")


DAMAGES = {"truncate": _truncate, "garble": _garble, "wrong types": _wrong_types}


def _target(sweep: Path, kind: str) -> Path:
    if kind == "merged":  # three of the packs merged (dd.store.compact), the rest not
        store = SweepStore(sweep.parent, sweep.name)
        merged = merge_packs(store, store.pack_files()[:3])
        drop_merged_packs(store)
        return merged
    if kind == "partial":  # a running pack's rows so far
        pack = sorted((sweep / "packs").glob("pack-*.parquet"))[0]
        (sweep / "partial").mkdir()
        return pack.rename(sweep / "partial" / pack.name)
    folder, pattern = {
        "pack": ("packs", "pack-*.parquet"),
        "profile": ("profiles", "pack-*.json"),
        "run record": ("runs", "run-*.json"),
        "spec": (".", "spec.yaml"),
        "plan": (".", "plan.parquet"),
    }[kind]
    return sorted((sweep / folder).glob(pattern))[0]


def _one_line_each(err: str) -> None:
    assert "Traceback" not in err
    for line in err.splitlines():  # a multi-line message has lines that are not dd's own
        assert line.startswith(("warning: ", "dd: ")), f"not one line: {err!r}"


def _read_all(capsys, root: Path) -> tuple[str, list[int]]:
    said, codes = "", []
    for command in READS:
        codes.append(main([*command, "--results", str(root)]))
        captured = capsys.readouterr()
        _one_line_each(captured.err)
        said += captured.err
    return said, codes


CASES = [
    (kind, damage)
    for kind in ("pack", "merged", "partial", "profile", "run record", "spec", "plan")
    for damage in DAMAGES
    if not (kind == "partial" and damage == "wrong types")
]


@pytest.mark.slow
@pytest.mark.ray  # the finished sweep is made by `dd sweep` in a subprocess
@pytest.mark.parametrize(("kind", "damage"), CASES, ids=[f"{k}-{d}" for k, d in CASES])
def test_every_read_command_says_one_line_naming_a_damaged_file(
    finished, tmp_path, capsys, kind, damage
):
    root = tmp_path / "r"
    shutil.copytree(finished, root)
    sweep = root / "tiny"
    path = _target(sweep, kind)
    DAMAGES[damage](path)
    said, codes = _read_all(capsys, root)
    assert path.name in said, f"no line names {path.name}: {said!r}"
    if kind == "spec":  # status and query read the stored plan; curves and report refuse
        assert codes == [0, 0, 0, 1, 1] and path.exists()
        assert all(path.name in line for line in said.splitlines())
        return
    if kind == "plan":  # read as none: every command falls back to the intact spec, warned
        assert set(codes) == {0} and path.exists(), said
        assert all(path.name in line and "stored spec" in line for line in said.splitlines())
        return
    assert set(codes) == {0}, said
    assert not path.exists(), "a damaged file is moved aside, not left to be read again"
    assert any((sweep / "corrupt").glob(f"{path.name}.*"))
    for line in said.splitlines():
        if path.name in line:
            assert "moved to" in line


# ---- checkpoints: a garbled one is ignored, never trusted


def test_a_garbled_checkpoint_is_ignored_with_one_line(tmp_path, capsys):
    from dd.engine import checkpoint as ckpt

    path = tmp_path / "pack.msgpack"
    kernel = np.arange(30_000, dtype=np.float32).reshape(2, 15_000)
    ckpt.save(path, {"kernel": kernel}, 5, [[{"step": 1}], [{"step": 1}]])
    template = {"kernel": np.zeros_like(kernel)}
    assert ckpt.restore(path, template, 2)[1] == 5, "a whole checkpoint resumes"
    _garble(path)  # 4000 bytes XOR-ed inside the kernel: msgpack still parses
    state, epoch, rows = ckpt.restore(path, template, 2)
    assert epoch == 0 and state is template and rows == [[], []]
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and path.name in err and "checksum" in err


def test_a_checkpoint_without_a_checksum_is_ignored(tmp_path, capsys):
    """A checkpoint of an older dd (bare msgpack) restarts its pack (docs/faults.md)."""
    import flax.serialization

    from dd.engine import checkpoint as ckpt

    path = tmp_path / "pack.msgpack"
    meta = np.frombuffer(json.dumps({"epoch": 3, "rows": [[]]}).encode(), np.uint8)
    path.write_bytes(flax.serialization.to_bytes({"replicas": {"w": np.ones(3)}, "meta": meta}))
    state, epoch, _ = ckpt.restore(path, {"w": np.zeros(3)}, 1)
    assert epoch == 0 and "no checksum" in capsys.readouterr().err


# ---- cost tables: a damaged one is ignored (the fallback rule plans), in one line

SMALL_MLP = {
    "name": "mlpcost",
    "data": {"name": "mnist1d", "n_train": 100, "train_pool": 100, "n_test": 100},
    "model": {"name": "mlp", "width": 8},
    "train": {"epochs": 2, "eval_points": 1, "batch_size": 50},
    "grid": {"model.width": [8, 16, 32], "seed": [0, 1]},
}


@pytest.mark.parametrize("damage", list(DAMAGES) + ["bad buckets", "bad entries"])
def test_a_damaged_cost_table_is_one_warning_and_the_dry_run_plans(
    tmp_path, capsys, monkeypatch, damage
):
    from dd.engine.costs import TABLES

    tables = tmp_path / "tables"
    shutil.copytree(TABLES, tables)
    table = tables / "cpu.json"
    if damage == "wrong types":
        table.write_text(json.dumps({"step_seconds": "abc"}))
    elif damage == "bad buckets":
        table.write_text(json.dumps({"buckets": "nonsense"}))
    elif damage == "bad entries":
        table.write_text(json.dumps({"buckets": {"mlp": {"x": 1}}, "step_seconds": {"mlp": []}}))
    else:
        DAMAGES[damage](table)
    monkeypatch.setenv("DD_COST_TABLES", str(tables))
    spec = tmp_path / "mlpcost.yaml"
    spec.write_text(yaml.safe_dump(copy.deepcopy(SMALL_MLP)))
    assert main(["sweep", str(spec), "--dry-run", "--results", str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    _one_line_each(captured.err)
    assert str(table) in captured.err and "ignored" in captured.err
    assert "to run in" in captured.out


# ---- dd query: no folder of the working directory is readable or writable

ESCAPES = [
    "SELECT content FROM read_text('{spelling}/secret.txt')",
    "COPY (SELECT 'overwritten' AS c) TO '{spelling}/secret.txt'",
    "COPY (SELECT 'new' AS c) TO '{spelling}/new.csv'",
    "SELECT * FROM read_csv('{spelling}/secret.txt')",
]
SPELLINGS = [".tmp", "./.tmp", "{cwd}/.tmp", "sub/../.tmp", "{cwd}/sub/../.tmp", ".tmp/."]


@pytest.mark.slow
@pytest.mark.ray  # the finished sweep is made by `dd sweep` in a subprocess
@pytest.mark.parametrize("sql", ESCAPES)
def test_query_can_neither_read_nor_write_the_working_folders_tmp(
    finished, tmp_path, capsys, monkeypatch, sql
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    secret = tmp_path / ".tmp" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("secret")
    for spelling in SPELLINGS:
        text = sql.format(spelling=spelling.format(cwd=tmp_path))
        assert main(["query", text, "--results", str(finished)]) == 2, text
        captured = capsys.readouterr()
        assert "secret" not in captured.out and len(captured.err.splitlines()) == 1, text
        assert secret.read_text() == "secret" and not (tmp_path / ".tmp" / "new.csv").exists()
    assert main(["query", "SELECT count(*) AS n FROM trials", "--results", str(finished)]) == 0
    assert capsys.readouterr().out.splitlines()[2].strip() == "24", "normal queries work"
