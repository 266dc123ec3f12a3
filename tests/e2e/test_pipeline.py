"""The whole path on local Ray: spec -> packs -> Parquet -> resume -> curves -> status/query."""

from __future__ import annotations

import copy
import json

import pyarrow.parquet as pq
import pytest

from dd.cli import main
from dd.plan.sweep import load_spec, parse_spec
from dd.run.execute import run_sweep
from dd.spec.ids import trial_id
from dd.store.sweep import SweepStore
from helpers import TINY_GAUSSIAN, run_dd


@pytest.fixture
def swept(ray_local, tmp_path):
    spec = parse_spec(copy.deepcopy(TINY_GAUSSIAN))
    report = run_sweep(spec, tmp_path, quiet=True)
    return spec, report, tmp_path


def test_sweep_stores_one_row_per_trial_in_atomic_pack_files(swept):
    spec, report, root = swept
    store = SweepStore(root, spec.name)
    assert report.trials_run == len(spec.trials) == 24 and not report.failed_packs
    files = store.pack_files()
    assert len(files) == report.packs >= 1
    assert not list(store.packs_dir.glob(".tmp-*")), "no temporary files left behind"
    table = store.read_results()
    assert sorted(table["trial_id"].to_pylist()) == sorted(trial_id(t) for t in spec.trials)
    for column in (
        "sweep",
        "seed",
        "data_n_train",
        "model_n_features",
        "test_mse",
        "coef_norm",
        "p_eff_test",
        "status",
        "wall_time_s",
        "jax_version",
    ):
        assert column in table.column_names, column
    assert set(table["status"].to_pylist()) == {"ok"}
    assert (store.dir / "spec.yaml").is_file()
    assert load_spec(store.dir / "spec.yaml").trials == spec.trials
    plan = pq.read_table(store.dir / "plan.parquet")  # what read commands read (dd.store.plan)
    assert plan.column("trial_id").to_pylist() == [trial_id(t) for t in spec.trials]
    packs = {r["pack_id"]: r for r in pq.read_table(files[0]).to_pylist()}
    assert set(plan.column("pack_id").to_pylist()) == {
        f.name.removeprefix("pack-").removesuffix(".parquet") for f in files
    }, packs.keys()


def test_second_run_trains_nothing_and_new_axis_values_train_only_new_trials(swept, capsys):
    spec, _, root = swept
    store = SweepStore(root, spec.name)
    before = {p: p.stat().st_mtime_ns for p in store.pack_files()}
    again = run_sweep(spec, root, quiet=False)
    assert again.trials_run == 0 and again.packs == 0
    assert "nothing to run" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in store.pack_files()} == before

    grown = copy.deepcopy(TINY_GAUSSIAN)
    grown["grid"]["model.n_features"] += [3, 10]
    bigger = parse_spec(grown)
    report = run_sweep(bigger, root, quiet=True)
    assert report.already_stored == 24 and report.trials_run == 8
    assert {p: p.stat().st_mtime_ns for p in before} == before, "old packs untouched"
    ids = store.read_results()["trial_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 32


def test_curves_status_and_query_commands(swept, capsys):
    spec, _, root = swept
    assert main(["curves", spec.name, "--results", str(root)]) == 0
    out = capsys.readouterr().out
    assert "threshold at model.n_features=12" in out  # n_train = 10 < 12 = first p above it
    assert (root / spec.name / "figures" / "model_wise.png").stat().st_size > 10_000
    points = pq.read_table(root / spec.name / "curves" / "model_wise.parquet")
    assert set(points["x"].to_pylist()) == {2, 5, 8, 12, 15, 20}

    assert main(["status", spec.name, "--results", str(root)]) == 0
    assert "24 trials planned: 24 done, 0 missing, 0 failed" in capsys.readouterr().out

    assert (
        main(
            [
                "query",
                "SELECT count(*) AS n, count(DISTINCT trial_id) AS trials FROM results",
                "--results",
                str(root),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[2].split() == ["24", "24"]
    assert main(["query", "SELECT nope FROM results", "--results", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dd: error: query failed") and len(err.splitlines()) == 1


def test_status_of_an_unknown_or_malicious_sweep_name(tmp_path, capsys):
    assert main(["status", "../etc", "--results", str(tmp_path)]) == 2
    assert "not a valid sweep name" in capsys.readouterr().err
    assert main(["status", "nothing-here", "--results", str(tmp_path)]) == 2
    assert "no sweep here" in capsys.readouterr().err


def test_dry_run_counts_and_writes_nothing(write_spec, tmp_path, capsys):
    path = write_spec(TINY_GAUSSIAN)
    assert main(["sweep", str(path), "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    assert "24 trials, 0 already stored; 24 to run in 1 pack\n" in capsys.readouterr().out
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (["--cpus", "0"], "argument --cpus: must be a whole number >= 1, got '0'"),
        (["--cpus", "1", "--address", "10.0.0.1:6379"], "--cpus: only a local Ray instance"),
    ],
)
def test_a_bad_local_cpu_count_is_one_line_exit_2_and_writes_nothing(
    options, message, write_spec, tmp_path, capsys
):
    path = write_spec(TINY_GAUSSIAN)
    try:  # argparse rejects a malformed value by exiting; dd's own checks return the code
        code = main(["sweep", str(path), "--results", str(tmp_path / "r"), *options])
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_python_m_dd_runs_as_a_module(tmp_path):
    done = run_dd("--version")
    assert done.returncode == 0 and done.stdout.startswith("dd ")
    bad = run_dd("sweep")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_a_pack_that_keeps_failing_is_recorded_and_the_sweep_exits_1(
    ray_local, write_spec, tmp_path, capsys
):
    spec_path = write_spec(TINY_GAUSSIAN)
    root = tmp_path / "results"
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "packs").write_text("a file where the packs directory should be")
    assert main(["sweep", str(spec_path), "--results", str(root), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "packs failed" in err and "Traceback" not in err
    assert main(["status", "tiny", "--results", str(root)]) == 0
    out = capsys.readouterr().out
    assert "24 trials planned: 0 done, 0 missing, 24 failed" in out
    assert "cannot write" in out, "the reason is recorded with the failed pack"
    (root / "tiny" / "packs").unlink()  # the disk is fixed: the same command finishes the sweep
    assert main(["sweep", str(spec_path), "--results", str(root), "--quiet"]) == 0
    assert main(["status", "tiny", "--results", str(root)]) == 0
    assert "24 done, 0 missing, 0 failed" in capsys.readouterr().out


def test_query_formats_and_files(swept, capsys, tmp_path):
    spec, _, root = swept
    sql = "SELECT model_n_features AS p, count(*) AS n FROM trials GROUP BY 1 ORDER BY 1"
    assert main(["query", sql, "--results", str(root), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == '"p","n"' and lines[1:] == [f"{p},4" for p in (2, 5, 8, 12, 15, 20)]
    assert main(["query", sql, "--results", str(root), "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == {"p": 2, "n": 4} and len(rows) == 6
    out = tmp_path / "trials.parquet"
    assert (
        main(
            [
                "query",
                "SELECT * FROM trials",
                "--results",
                str(root),
                "--format",
                "parquet",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert capsys.readouterr().err.strip() == f"24 rows written to {out}"
    table = pq.read_table(out)
    assert table.num_rows == 24 and set(table["n_evals"].to_pylist()) == {1}
    assert not list(tmp_path.glob(".tmp-*"))
    for bad in (["--format", "parquet"], ["--output", str(tmp_path / "x.txt")]):
        assert main(["query", sql, "--results", str(root), *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("dd: error: --")
        assert not (tmp_path / "x.txt").exists()


def test_python_api_loads_rows_trials_and_curves(swept):
    from dd import api

    spec, _, root = swept
    rows = api.load(spec.name, root)
    assert rows.num_rows == 24 and set(rows["status"].to_pylist()) == {"ok"}
    trials = api.query("SELECT trial_id, test_mse, best_test_mse FROM trials", spec.name, root)
    assert trials["test_mse"].to_pylist() == trials["best_test_mse"].to_pylist()
    curves = api.curves(spec.name, root)
    assert curves["model_wise"].landmarks.to_pylist()[0]["threshold_x"] == 12
