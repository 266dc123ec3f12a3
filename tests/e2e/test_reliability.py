"""Edges a user hits (issue 13): each ends in one clear line, nothing hangs, nothing is
silently wrong."""

from __future__ import annotations

import copy
import os
import shlex
import subprocess
import sys

import pytest
import yaml

from dd.cli import main
from dd.plan.sweep import load_spec
from dd.spec.errors import SpecError
from helpers import TINY_GAUSSIAN, dd_command, kill_tree, run_dd, start_dd


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


# ---- item 10: duplicate keys
def test_duplicate_yaml_keys_are_refused_naming_key_and_line(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text(
        "name: dup\ndata: {name: gaussian, dim: 20, n_train: 10}\n"
        "model: {name: raw_features, n_features: 1}\n"
        "model: {name: raw_features, n_features: 2}\n"
    )
    with pytest.raises(SpecError, match=r"duplicate key 'model'.*line 4"):
        load_spec(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("name: dup\ndata:\n  name: gaussian\n  dim: 20\n  dim: 30\n")
    with pytest.raises(SpecError, match=r"duplicate key 'dim'.*line 5"):
        load_spec(nested)
    assert main(["sweep", str(path), "--results", str(tmp_path / "r"), "--dry-run"]) == 2
    _one_line_error(capsys)


# ---- item 11: non-UTF-8 spec, empty SQL, closed pipe
def test_non_utf8_spec_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    assert main(["sweep", str(path), "--results", str(tmp_path / "r"), "--dry-run"]) == 2
    assert "UTF-8" in _one_line_error(capsys)


# ---- item 12: control characters in names; names from file names
@pytest.mark.parametrize("name", ["abc\n", "a\tb", "abc\r", "x\x00y"])
def test_sweep_names_with_control_characters_are_refused(name):
    mapping = {**copy.deepcopy(TINY_GAUSSIAN), "name": name}
    from dd.plan.sweep import parse_spec

    with pytest.raises(SpecError, match="^name:"):
        parse_spec(mapping)


def test_a_name_from_the_file_name_says_so(tmp_path):
    mapping = copy.deepcopy(TINY_GAUSSIAN)
    del mapping["name"]
    path = tmp_path / "my sweep.yaml"
    path.write_text(yaml.safe_dump(mapping))
    with pytest.raises(SpecError, match="from the file name"):
        load_spec(path)


# ---- a stored sweep, for the readers
@pytest.fixture(scope="module")
def stored(ray_local, tmp_path_factory):
    from dd.plan.sweep import parse_spec
    from dd.run.execute import run_sweep

    root = tmp_path_factory.mktemp("stored")
    spec = parse_spec(copy.deepcopy(TINY_GAUSSIAN))
    run_sweep(spec, root, quiet=True)
    return spec, root


def test_empty_sql_is_one_line_exit_2(stored, capsys):
    spec, root = stored
    for sql in ("", ";", "  ; "):
        for fmt in ("table", "csv"):
            assert main(["query", sql, "--results", str(root), "--format", fmt]) == 2
            assert "empty" in _one_line_error(capsys)


def test_query_into_a_closed_pipe_is_quiet(stored):
    spec, root = stored
    sql = "SELECT * FROM results, range(50)"
    for fmt in ("table", "csv"):
        done = subprocess.run(
            shlex.join(dd_command("query", sql, "--results", root, "--format", fmt)) + " | head -1",
            shell=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert len(done.stdout.splitlines()) == 1
        assert done.stderr == "", done.stderr


# ---- item 1: CSV of every view, list columns included
def test_csv_of_every_view_serialises_list_columns_as_json(stored, capsys):
    import csv
    import io
    import json

    spec, root = stored
    for view in ("results", "trials"):
        assert (
            main(["query", f"SELECT * FROM {view}", "--results", str(root), "--format", "csv"]) == 0
        )
        rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
        assert len(rows) == len(spec.trials)
        assert "fourier_norms" in rows[0]
        for row in rows:
            assert row["fourier_norms"] == "" or isinstance(json.loads(row["fourier_norms"]), list)
    out = tmp = root / "lists.csv"
    assert (
        main(
            [
                "query",
                "SELECT [1.5, 2.0] AS l, ['a', 'b,c'] AS s FROM results LIMIT 1",
                "--results",
                str(root),
                "--format",
                "csv",
                "--output",
                str(tmp),
            ]
        )
        == 0
    )
    row = next(csv.DictReader(io.StringIO(out.read_text())))
    assert json.loads(row["l"]) == [1.5, 2.0] and json.loads(row["s"]) == ["a", "b,c"]


# ---- item 16: read-only SQL
@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 1) TO '{root}/leak.csv'",
        "ATTACH '{root}/leak.duckdb' AS other",
        "SELECT * FROM read_csv('/etc/passwd')",
        "INSTALL httpfs",
        "SET enable_external_access = true",
    ],
)
def test_query_cannot_touch_the_file_system(stored, capsys, sql):
    spec, root = stored
    assert main(["query", sql.format(root=root), "--results", str(root)]) == 2
    _one_line_error(capsys)
    assert not list(root.glob("leak*"))


# ---- item 3: curves fields name metrics and axes that exist
@pytest.mark.parametrize(
    "curves, field",
    [
        ({"threshold_metric": "nosuch_metric"}, "curves.threshold_metric"),
        ({"threshold_metric": "fourier_norms"}, "curves.threshold_metric"),
        ({"threshold_metric": "train_error"}, "curves.threshold_metric"),  # regression data
        ({"x": "model.n_featurez"}, "curves.x"),
        ({"x": "data.noise_var"}, "curves.x"),  # a field, but not swept: a one-point curve
        ({"phase_x": "fit.ridge"}, "curves.phase_x"),
        ({"phase_y": "nosuch"}, "curves.phase_y"),
    ],
)
def test_curves_fields_name_metrics_and_axes_that_exist(curves, field):
    from dd.api import load_spec

    with pytest.raises(SpecError) as e:
        load_spec({**copy.deepcopy(TINY_GAUSSIAN), "curves": curves})
    assert e.value.path == field


def test_curves_fields_that_exist_are_accepted():
    from dd.api import load_spec

    spec = load_spec(
        {
            **copy.deepcopy(TINY_GAUSSIAN),
            "curves": {"threshold_metric": "test_mse", "x": "model.n_features", "phase_x": "seed"},
        }
    )
    assert spec.curves.threshold_metric == "test_mse"


# ---- item 5: resources no node can hold; an address that does not answer
NODE = {"Alive": True, "Resources": {"CPU": 2.0, "memory": 8 * 2**30}}
GPU_NODE = {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0, "memory": 64 * 2**30}}


@pytest.mark.parametrize(
    "resources, fits",
    [
        ({}, True),
        ({"cpus": 2}, True),
        ({"cpus": 64}, False),
        ({"gpus": 1}, False),
        ({"memory_gb": 9}, False),
        ({"memory_gb": 0.5, "cpus": 0.5}, True),
    ],
)
def test_check_fits_asks_one_node_for_a_whole_pack(resources, fits):
    from dd.plan.sweep import Resources
    from dd.run.cluster import check_fits
    from dd.spec.fields import build

    wanted = build(Resources, resources, "resources")
    if fits:
        check_fits(wanted, [NODE])
    else:
        with pytest.raises(SpecError, match="no node of the cluster can hold one pack"):
            check_fits(wanted, [NODE, {**GPU_NODE, "Alive": False}])
    check_fits(build(Resources, {"gpus": 1, "cpus": 8}, "resources"), [NODE, GPU_NODE])


@pytest.mark.parametrize("resources", [{"cpus": 64}, {"gpus": 1}, {"memory_gb": 100000}])
def test_resources_no_node_has_are_exit_2_before_anything_is_written(
    ray_local, resources, write_spec, tmp_path, capsys
):
    path = write_spec({**copy.deepcopy(TINY_GAUSSIAN), "resources": resources})
    results = tmp_path / "results"
    assert main(["sweep", str(path), "--results", str(results), "--quiet"]) == 2
    assert "no node of the cluster can hold one pack" in _one_line_error(capsys)
    assert not results.exists() or not any(results.iterdir()), "nothing written"


def _silent_listener():
    """A loopback port that accepts connections and never answers."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []
    threading.Thread(
        target=lambda: held.extend(server.accept() for _ in range(4)), daemon=True
    ).start()
    return server


@pytest.mark.slow
def test_an_unreachable_address_is_one_line_within_the_timeout(write_spec, tmp_path):
    server = _silent_listener()
    path = write_spec(TINY_GAUSSIAN)
    results = tmp_path / "results"
    for address in ("127.0.0.1:1", f"127.0.0.1:{server.getsockname()[1]}"):
        done = run_dd(
            "sweep",
            path,
            "--results",
            results,
            "--address",
            address,
            "--connect-timeout",
            "2",
            timeout=90,
        )
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert address in done.stderr
        assert not results.exists() or not any(results.iterdir()), "nothing written"
    server.close()


def test_connect_timeout_comes_from_the_environment():
    from dd.spec.errors import DDError
    from dd.spec.settings import Settings

    environ = {"DD_CONNECT_TIMEOUT": "7.5"}
    assert Settings.load(environ).connect_timeout_s == 7.5
    assert Settings.load(environ, connect_timeout_s=3.0).connect_timeout_s == 3.0
    assert Settings.load({}).connect_timeout_s == 30.0
    with pytest.raises(DDError, match="DD_CONNECT_TIMEOUT"):
        Settings.load({"DD_CONNECT_TIMEOUT": "soon"})


# ---- item 13: a refused run leaves the stored spec as it was
def test_a_spec_refused_for_its_data_file_leaves_the_stored_spec(stored, tmp_path, capsys):
    spec, root = stored
    before = (root / spec.name / "spec.yaml").read_bytes()
    changed = {
        "name": spec.name,
        "data": {
            "name": "mnist",
            "n_train": 100,
            "n_test": 10,
            "data_dir": str(tmp_path / "nowhere"),
        },
        "model": {"name": "mlp", "width": 8},
        "train": {"batch_size": 50},
    }
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(changed))
    assert main(["sweep", str(path), "--results", str(root), "--quiet"]) == 2
    assert "nowhere" in _one_line_error(capsys)
    assert (root / spec.name / "spec.yaml").read_bytes() == before


# ---- items 7 and 17: SIGTERM stops the driver like Ctrl-C; only dd's lines are shown
SLOW = {
    "name": "sig",
    "data": {"name": "mnist1d", "n_train": 200, "train_pool": 200, "n_test": 200},
    "model": {"name": "mlp", "width": 16},
    "train": {"optimizer": "sgd", "lr": 0.05, "batch_size": 20, "epochs": 40, "eval_points": 2},
    "grid": {"seed": [0, 1]},
    "resources": {"cpus": 1},
}
DD_LINE = r"^(sig: |dd: (terminated|interrupted)|results: )"


@pytest.mark.ray  # a real driver with its local Ray instance
def test_sigterm_ends_the_driver_like_ctrl_c_and_only_dd_lines_show(tmp_path):
    import os
    import re
    import signal
    import time

    path = tmp_path / "sig.yaml"
    path.write_text(yaml.safe_dump(SLOW))
    results = tmp_path / "results"
    command = ["sweep", str(path), "--results", str(results), "--no-curves", "--cpus", "1"]
    driver = start_dd(*command)
    try:
        deadline = time.monotonic() + 240
        running = results / "sig" / "running"
        while not list(running.glob("pack-*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(running.glob("pack-*.json")), "a pack started"
        driver.send_signal(signal.SIGTERM)
        out, err = driver.communicate(timeout=120)
    finally:
        kill_tree(driver.pid)
    assert driver.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("dd: terminated; run the same command")
    for line in err.strip().splitlines():
        assert re.match(DD_LINE, line), f"not a dd line: {line!r}\n{err}"
    again = start_dd(*command, "--quiet")
    try:
        out, err = again.communicate(timeout=300)
    finally:
        kill_tree(again.pid)
    assert again.returncode == 0, err
    assert err.strip().splitlines() == [
        line for line in err.strip().splitlines() if re.match(r"^sig: ran 2 trials in", line)
    ], err
    assert len(err.strip().splitlines()) == 1, err
    from dd.store.sweep import SweepStore

    assert len(SweepStore(results, "sig").stored_trial_ids()) == 2
    assert os.path.exists(results / "sig" / "spec.yaml")


# ---- item 8: a running record of a dead process is stale
def test_status_calls_a_running_record_of_a_dead_process_stale(stored, capsys):
    import json
    import os
    import socket

    spec, root = stored
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    running = root / spec.name / "running"
    running.mkdir(exist_ok=True)
    records = {"deadpack": dead.pid, "livepack": os.getpid()}
    try:
        for pack, pid in records.items():
            (running / f"pack-{pack}.json").write_text(
                json.dumps(
                    {"pack_id": pack, "pid": pid, "host": socket.gethostname(), "started": "t"}
                )
            )
        assert main(["status", spec.name, "--results", str(root)]) == 0
        lines = capsys.readouterr().out.splitlines()
        (dead_line,) = [line for line in lines if "deadpack" in line]
        (live_line,) = [line for line in lines if "livepack" in line]
        assert "stale" in dead_line and f"pid {dead.pid}" in dead_line
        assert "stale" not in live_line
    finally:
        for pack in records:
            (running / f"pack-{pack}.json").unlink()


# ---- item 9: the progress line counts failed trials apart from done ones
def test_progress_counts_failed_trials_apart(capsys):
    from dd.run.progress import Progress

    with Progress(total=4, label="p") as progress:
        progress.advance(2, failed=True)
        progress.advance(2)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("p: 0/4 trials done, 2 failed"), lines
    assert lines[1].startswith("p: 2/4 trials done, 2 failed"), lines


# ---- item 15: spec.yaml deleted: the readers take the spec file
def test_readers_take_the_spec_file_when_spec_yaml_is_gone(ray_local, tmp_path, write_spec, capsys):
    from dd.plan.sweep import parse_spec
    from dd.run.execute import run_sweep

    spec = parse_spec({**copy.deepcopy(TINY_GAUSSIAN), "name": "gone"})
    run_sweep(spec, tmp_path / "r", quiet=True)
    (tmp_path / "r" / "gone" / "spec.yaml").unlink()
    results = ["--results", str(tmp_path / "r")]
    assert main(["status", "gone", *results]) == 0, "status reads the stored plan alone"
    assert "24 trials planned: 24 done" in capsys.readouterr().out
    assert main(["curves", "gone", *results]) == 1
    err = _one_line_error(capsys)
    assert "pack files are stored" in err and "spec file" in err
    path = write_spec({**copy.deepcopy(TINY_GAUSSIAN), "name": "gone"}, "gone.yaml")
    assert main(["status", str(path), *results]) == 0
    assert "24 trials planned: 24 done" in capsys.readouterr().out
    assert main(["curves", str(path), *results]) == 0
    assert "threshold at model.n_features=12" in capsys.readouterr().out
    assert main(["report", str(path), *results]) == 0
    assert (tmp_path / "r" / "gone" / "report.html").is_file()


# ---- item 4: a junk pack: every reader quarantines it; curves say they are incomplete
def test_a_junk_pack_is_quarantined_by_every_reader_and_curves_say_incomplete(
    ray_local, tmp_path, capsys
):
    from dd.plan.sweep import parse_spec
    from dd.run.execute import run_sweep
    from dd.store.sweep import SweepStore

    spec = parse_spec(
        {**copy.deepcopy(TINY_GAUSSIAN), "name": "junk", "resources": {"max_pack": 6}}
    )
    root = tmp_path / "r"
    run_sweep(spec, root, quiet=True)
    store = SweepStore(root, "junk")
    files = store.pack_files()
    assert len(files) == 4
    files[0].write_bytes(files[0].read_bytes()[:300])  # truncated
    files[1].write_bytes(b"PAR1" + b"junk" * 100 + b"PAR1")  # junk
    capsys.readouterr()
    assert (
        main(["query", "SELECT count(DISTINCT trial_id) AS n FROM results", "--results", str(root)])
        == 0
    )
    captured = capsys.readouterr()
    assert captured.out.splitlines()[2].strip() == "12"
    assert captured.err.count("moved to") == 2 and "Traceback" not in captured.err
    assert len(list((store.dir / "corrupt").iterdir())) == 2
    for command in (["curves", "junk"], ["report", "junk"]):
        assert main([*command, "--results", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.count("incomplete: 12 of 24 planned trials missing") == 1
    html = (store.dir / "report.html").read_text()
    assert "incomplete: 12 of 24 planned trials missing" in html


# ---- item 2: a sweep in which every trial diverged
DIVERGING = {
    "name": "boom",
    "data": {"name": "mnist1d", "n_train": 100, "train_pool": 100, "n_test": 100},
    "model": {"name": "mlp", "width": 8},
    "train": {"optimizer": "sgd", "lr": 1.0e6, "batch_size": 50, "epochs": 5, "eval_points": 2},
    "grid": {"seed": [0, 1]},
}


def test_a_sweep_whose_trials_all_diverged_is_a_result(ray_local, tmp_path, write_spec, capsys):
    path = write_spec(DIVERGING, "boom.yaml")
    results = ["--results", str(tmp_path / "r")]
    assert main(["sweep", str(path), *results, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "no curve: all 2 stored trials diverged" in out
    assert main(["status", "boom", *results]) == 0
    assert "2 trials planned: 2 done (2 diverged), 0 missing, 0 failed" in capsys.readouterr().out
    assert main(["curves", "boom", *results]) == 0
    assert "no curve: all 2 stored trials diverged" in capsys.readouterr().out
    assert main(["report", "boom", *results]) == 0
    html = (tmp_path / "r" / "boom" / "report.html").read_text()
    assert "no curve: all 2 stored trials diverged" in html
    assert html.count("<td>1000000</td>") == 2 or html.count("<td>1e+06</td>") == 2, (
        "each diverged trial is listed with its config (train_lr)"
    )


# ---- item 6: large grids plan compactly; a grid above the limit is refused before expansion
@pytest.mark.slow
def test_a_grid_above_the_limit_is_refused_in_one_line_before_memory_is_spent(tmp_path):
    huge = {
        **copy.deepcopy(TINY_GAUSSIAN),
        "data": {"name": "gaussian", "dim": 1000, "n_train": 10, "n_test": 10},
        "grid": {
            "model.n_features": {"range": [1, 1001]},
            "seed": {"range": [0, 10**6]},
            "fit.ridge": {"linspace": [0, 1, 100]},
        },
    }  # 10^11 points
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(huge))

    # memory capped: without the check, expansion would fail there, not eat the machine
    capped = (
        "import resource, runpy, sys; "
        "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); "
        "sys.argv = ['dd'] + sys.argv[1:]; runpy.run_module('dd', run_name='__main__')"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            capped,
            "sweep",
            str(path),
            "--dry-run",
            "--results",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert (
        done.stderr.count("\n") == 1
        and "100,000,000,000 grid points exceed the limit of 10,000,000" in done.stderr
        and "DD_MAX_TRIALS" in done.stderr
    )


def test_a_single_axis_over_the_limit_is_refused_unexpanded(tmp_path):
    """One 100,000,000-seed axis: its length is arithmetic, so the refusal holds no list of
    its values (0.2.0 grew to 11.9 GB before refusing). The peak memory is the child's
    rusage, read by a small parent process: a child's maxrss includes the size of the
    process that forked it, and the test runner's may be large."""
    huge = {**copy.deepcopy(TINY_GAUSSIAN), "grid": {"seed": {"range": [0, 100_000_000]}}}
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(huge))
    measure = (
        "import resource, subprocess, sys; "
        "done = subprocess.run(sys.argv[1:], stderr=subprocess.PIPE, text=True); "
        "sys.stderr.write(done.stderr); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "sys.exit(done.returncode)"
    )
    dd = [sys.executable, "-m", "dd", "sweep", str(path), "--dry-run"]
    done = subprocess.run(
        [sys.executable, "-c", measure, *dd, "--results", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "100,000,000 grid points exceed the limit of 10,000,000" in done.stderr
    peak_kib = int(done.stdout.split()[-1])  # KiB on Linux
    assert peak_kib < 200 * 1024, f"{peak_kib / 1024:.0f} MiB"


@pytest.mark.parametrize(
    "field,axis",
    [
        ("seed", {"range": [0, 50, 7]}),
        ("seed", {"range": [10, 0, -3]}),
        ("fit.ridge", {"linspace": [0.5, 2.0, 9]}),
        ("fit.ridge", {"linspace": [1.0, 1.0, 4]}),  # one value
        ("model.n_features", {"geomspace": [1, 20, 30]}),  # rounded: fewer than 30
        ("model.n_features", {"linspace": [1, 5, 20]}),  # rounded: 5
        ("model.n_features", [3, {"range": [1, 6]}, {"geomspace": [1, 8, 8]}]),
        ("fit.ridge", [0.1, {"range": [0, 3]}, {"geomspace": [0.01, 1, 5]}]),
    ],
)
def test_grid_size_counts_what_expansion_makes(field, axis, monkeypatch):
    """The size check's count, taken before expanding, equals the trials expanded (integer
    fields round and de-duplicate), so the limit refuses exactly the grids above it."""
    from dd.plan.sweep import parse_spec
    from dd.spec.grid import (
        Factor,
        axis as make_axis,
        grid_size,
    )

    mapping = {**copy.deepcopy(TINY_GAUSSIAN), "grid": {field: axis}}
    n = len(parse_spec(copy.deepcopy(mapping)).trials)
    assert grid_size([Factor((make_axis(field, axis, f"grid.{field}"),))], limit=10**9) == n
    assert len(parse_spec(copy.deepcopy(mapping), max_trials=n).trials) == n
    if n == 1:  # (the one-value axis: no smaller limit to refuse it)
        return
    with pytest.raises(SpecError, match=f"^grid: {n} grid points exceed the limit of {n - 1}"):
        parse_spec(copy.deepcopy(mapping), max_trials=n - 1)


def test_the_trial_limit_comes_from_the_environment_through_the_api(monkeypatch):
    """$DD_MAX_TRIALS is read where the API is entered (``Settings``) and handed to the spec."""
    from dd import api

    monkeypatch.setenv("DD_MAX_TRIALS", "24")
    assert len(api.load_spec(copy.deepcopy(TINY_GAUSSIAN)).trials) == 24
    monkeypatch.setenv("DD_MAX_TRIALS", "23")
    with pytest.raises(SpecError, match="^grid: 24 grid points exceed the limit of 23"):
        api.load_spec(copy.deepcopy(TINY_GAUSSIAN))


@pytest.mark.parametrize(
    "mapping",
    [
        TINY_GAUSSIAN,
        {
            **TINY_GAUSSIAN,
            "grid": {
                "seed": [0, 1],
                "zip": [
                    {
                        "data.n_train": [5, 10, 10],
                        "model.n_features": [4, 8, 8],
                        "fit.ridge": [0, 0.1, 0.1],
                    }
                ],
            },
        },
        {
            "name": "t",
            "data": {"name": "gaussian", "dim": 20, "n_train": 10},
            "model": {"name": "mlp", "width": 4},
            "train": {"epochs": 2, "batch_size": 5, "objective": "mse"},
            "grid": {"train.lr": [0.1, 0.01], "model.width": [4, 8], "data.n_train": [10, 20]},
        },
        {
            "name": "t",
            "data": {"name": "mnist1d", "n_train": 200},
            "model": {"name": "mlp", "width": 4},
            "grid": {"train.batch_size": [10, 20], "seed": {"range": [0, 3]}},
        },  # no train section
        {
            "name": "t",
            "data": {"name": "gaussian", "dim": 20, "n_train": 10},
            "model": {"name": "raw_features", "n_features": 5},
            "grid": {"model.name": ["raw_features", "relu_features"], "seed": [0, 1]},
        },
    ],
)
def test_expanded_trials_equal_one_build_per_grid_point(mapping):
    """The shared-parts expansion gives the trials, ids and order of building every grid point
    from scratch."""
    import itertools

    from dd.plan.sweep import parse_spec
    from dd.spec.config import Trial
    from dd.spec.fields import build
    from dd.spec.grid import expand_grid, set_dotted
    from dd.spec.ids import trial_id

    spec = parse_spec(copy.deepcopy(mapping))
    base = {k: mapping[k] for k in ("seed", "data", "model", "fit", "train") if k in mapping}
    _, factors = expand_grid(mapping["grid"], True)
    naive = {}
    points = [
        [dict(zip(f.names, row, strict=False)) for row in zip(*f.columns(), strict=False)]
        for f in factors
    ]
    for combo in itertools.product(*points):
        raw = copy.deepcopy(base)
        for part in combo:
            for dotted, value in part.items():
                set_dotted(raw, dotted, value)
        trial = build(Trial, raw)
        naive.setdefault(trial_id(copy.deepcopy(trial)), trial)
    assert list(spec.trials) == list(naive.values())
    assert [trial_id(t) for t in spec.trials] == list(naive)


@pytest.mark.slow
def test_planning_a_large_grid_keeps_one_small_object_per_trial(tmp_path):
    """100,000 trials planned with their packs in little memory (Python allocations, by
    tracemalloc): 0.2.0 held a whole config tree per trial and a list of every grid point."""
    import tracemalloc

    import dd.engine.closed_form  # noqa: F401 -- imported before measuring: its modules are not the plan's
    from dd.plan.sweep import parse_spec
    from dd.run.schedule import plan
    from dd.store.sweep import SweepStore

    mapping = {
        "name": "big",
        "data": {"name": "gaussian", "dim": 200, "n_train": 10, "n_test": 10},
        "model": {"name": "raw_features", "n_features": 1},
        "grid": {"model.n_features": {"range": [1, 101]}, "seed": {"range": [0, 1000]}},
    }
    tracemalloc.start()
    spec = parse_spec(mapping)
    packs, stored = plan(spec, SweepStore(tmp_path, "big"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(spec.trials) == 100_000 and stored == 0
    assert sum(len(p.trials) for p in packs) == 100_000
    assert peak < 80 * 2**20, f"{peak / 2**20:.0f} MiB"


# ---- item 14: checkpoints no planned pack will read are removed, and the run says so
def test_checkpoints_no_planned_pack_reads_are_removed(ray_local, tmp_path, capsys):
    from dd.plan.sweep import parse_spec
    from dd.run.execute import run_sweep
    from dd.run.schedule import plan
    from dd.store.sweep import SweepStore

    spec = parse_spec({**copy.deepcopy(TINY_GAUSSIAN), "name": "ckpt"})
    store = SweepStore(tmp_path, "ckpt")
    packs, _ = plan(spec, store)
    checkpoints = store.dir / "checkpoints"
    checkpoints.mkdir(parents=True)
    planned = checkpoints / f"pack-{packs[0].id}.msgpack"
    stale = checkpoints / "pack-0123456789abcdef.msgpack"  # a pack of an earlier spec
    for path in (planned, stale):
        path.write_bytes(b"state")
    run_sweep(spec, tmp_path, quiet=False)
    assert planned.exists() and not stale.exists()
    assert "removed 1 checkpoint that no planned pack reads" in capsys.readouterr().err


# ---- dd query: current views beside all_*; interrupts and limits
MLP = {
    "name": "epochs",
    "data": {"name": "mnist1d", "n_train": 100},
    "model": {"name": "mlp", "width": 8},
    "train": {"epochs": 30, "batch_size": 50},
    "grid": {"model.width": [4, 8], "seed": [0, 1]},
}


def test_query_views_hold_the_current_spec_and_all_views_every_version(tmp_path, capsys):
    """After train.epochs changes, results and trials hold the current spec's trials only,
    so an average over them never mixes 30- and 60-epoch trials; all_* hold both."""
    from helpers import store_trials

    root = tmp_path / "r"
    old = store_trials(root, MLP, steps=3)
    new = store_trials(root, {**MLP, "train": {**MLP["train"], "epochs": 60}}, steps=3)
    assert not set(old) & set(new)

    def query(sql: str) -> list[dict]:
        import json

        capsys.readouterr()
        assert main(["query", sql, "--results", str(root), "--format", "json"]) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert query("SELECT DISTINCT train_epochs AS e, current FROM results") == [
        {"e": 60, "current": True}
    ]
    assert query("SELECT DISTINCT train_epochs AS e FROM trials") == [{"e": 60}]
    assert query("SELECT count(*) AS n FROM results") == [{"n": 4 * 3}]
    by_epochs = "SELECT train_epochs AS e, count(*) AS n, bool_and(current) AS c FROM all_trials"
    assert query(by_epochs + " GROUP BY 1 ORDER BY 1") == [
        {"e": 30, "n": 4, "c": False},
        {"e": 60, "n": 4, "c": True},
    ]
    assert query("SELECT count(*) AS n FROM all_results") == [{"n": 8 * 3}]
    ids = query("SELECT trial_id FROM trials ORDER BY 1")
    assert [row["trial_id"] for row in ids] == sorted(new)


def test_query_limits_come_from_flags_and_default_to_a_share_of_the_machine(tmp_path, capsys):
    import json

    from helpers import store_trials

    root = tmp_path / "r"
    store_trials(root, MLP)
    sql = "SELECT current_setting('threads') AS t, current_setting('memory_limit') AS m"
    flags = ["--results", str(root), "--format", "json"]
    assert main(["query", sql, *flags, "--threads", "1", "--memory-limit", "1GB"]) == 0
    assert json.loads(capsys.readouterr().out) == {"t": 1, "m": "953.6 MiB"}
    assert main(["query", sql, *flags]) == 0
    settings = json.loads(capsys.readouterr().out)
    threads, memory = settings["t"], settings["m"]
    assert 1 <= int(threads) <= max(1, os.cpu_count() // 2)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    value, unit = memory.split()
    assert float(value) * {"MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit] <= total / 2 * 1.01
    assert main(["query", sql, *flags, "--memory-limit", "lots"]) == 2
    assert _one_line_error(capsys).startswith("dd: error: --memory-limit: 'lots' is not a size")


RUNAWAY = "SELECT sum(a.step * b.step + c.step) FROM results a, results b, results c"


def _runaway_query(tmp_path, *flags: str) -> subprocess.Popen:
    """``dd query`` of a triple cross join over 6,000 rows (minutes of work), started once dd
    is imported (a signal before that would only stop the imports)."""
    from helpers import store_trials

    root = tmp_path / "r"
    store_trials(root, {**MLP, "grid": {"seed": {"range": [0, 2000]}}}, steps=3)
    started = (
        "import sys; import dd.cli, dd.analysis.query, duckdb; print('ready', file=sys.stderr, "
        "flush=True); sys.exit(dd.cli.main(sys.argv[1:]))"
    )
    command = [sys.executable, "-c", started, "query", RUNAWAY, "--results", str(root), *flags]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stderr.readline() == "ready\n"
    return proc


@pytest.mark.parametrize("signum,code,how", [(2, 130, "interrupted"), (15, 143, "terminated")])
@pytest.mark.slow
def test_a_runaway_query_stops_on_sigint_and_sigterm(tmp_path, signum, code, how):
    import time

    proc = _runaway_query(tmp_path, "--threads", "1")
    time.sleep(3)  # the query is running (connecting takes well under that)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)  # without the interrupt: minutes
    assert proc.returncode == code, err
    assert err.strip().splitlines() == [f"dd: query {how}"]


@pytest.mark.slow
def test_a_query_past_its_timeout_stops_with_one_line(tmp_path):
    proc = _runaway_query(tmp_path, "--threads", "1", "--timeout", "2")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert err.strip().splitlines() == ["dd: error: query: stopped after --timeout 2 s"]


def test_status_of_a_spec_file_agrees_with_its_dry_run(tmp_path, capsys):
    """A run with an override stores its overridden spec; `dd status FILE` then counted that
    stored spec ("4 done, 0 missing") while `dd sweep FILE --dry-run` planned the file's
    own trials ("0 already stored; 4 to run"). Both now count the file's trials."""
    from dd.plan.sweep import apply_overrides
    from helpers import store_trials

    root = tmp_path / "r"
    store_trials(root, apply_overrides(MLP, ["train.epochs=5"]))  # what an API run stores
    path = tmp_path / "epochs.yaml"
    path.write_text(yaml.safe_dump(MLP))
    capsys.readouterr()
    assert main(["sweep", str(path), "--dry-run", "--results", str(root)]) == 0
    assert "4 trials, 0 already stored; 4 to run" in capsys.readouterr().out
    assert main(["status", str(path), "--results", str(root)]) == 0
    out = capsys.readouterr().out
    assert "4 trials planned: 0 done, 4 missing" in out
    assert "4 stored trials belong to an earlier version of the spec" in out
    assert main(["status", "epochs", "--results", str(root)]) == 0  # by name: what ran
    assert "4 trials planned: 4 done, 0 missing" in capsys.readouterr().out


# ---- a local Ray whose start-up times out under load: tried once more, then one line
RAY_NODE_TIMEOUT = (
    "The current node timed out during startup. This could happen because some of the "
    "raylet failed to startup or the GCS has become overloaded."
)


@pytest.fixture
def failing_ray_init(monkeypatch):
    """``ray.init`` that fails as Ray's local node does under load, the first ``n`` times
    (``failing_ray_init(n)``); returns the list of calls. No real Ray is touched."""
    import ray

    calls: list[dict] = []

    def arm(n: int) -> list[dict]:
        def init(**options):
            calls.append(options)
            if len(calls) <= n:
                raise Exception(RAY_NODE_TIMEOUT)  # Ray raises a bare Exception here

        monkeypatch.setattr(ray, "is_initialized", lambda: False)
        monkeypatch.setattr(ray, "init", init)
        monkeypatch.setattr(ray, "shutdown", lambda: None)
        return calls

    return arm


def test_a_local_ray_start_that_times_out_once_is_tried_once_more(failing_ray_init, capsys):
    from dd.run.cluster import start_ray

    calls = failing_ray_init(1)
    start_ray("local", timeout=30.0, local_cpus=2)
    assert len(calls) == 2 and calls[1]["address"] == "local" and calls[1]["num_cpus"] == 2
    assert "starting Ray failed (Exception: The current node timed out" in capsys.readouterr().err


def test_a_local_ray_that_never_starts_is_one_line_and_writes_nothing(
    failing_ray_init, write_spec, tmp_path, capsys
):
    calls = failing_ray_init(2)
    results = tmp_path / "r"
    code = main(["sweep", str(write_spec(TINY_GAUSSIAN)), "--results", str(results), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(calls) == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("dd: error: cannot start a local Ray instance after 2 tries")
    assert "timed out during startup" in err and "--address" in err
    assert not results.exists() or not any(results.iterdir()), "nothing written"


# ---- a sweep of the user's own module: the driver forks nothing once JAX is up
TINY_MODULE = """
import flax.linen as nn


class TinyNet(nn.Module):
    width: int
    n_outputs: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dense(self.n_outputs)(nn.relu(nn.Dense(self.width)(x)))
"""


@pytest.mark.slow
@pytest.mark.ray
def test_a_sweep_of_an_own_module_warns_of_no_fork(tmp_path, write_spec):
    """The spec's check traces the user's module; were JAX's backend started by it, Ray's
    start-up (subprocesses with a preexec_fn: a fork) would print JAX's os.fork() warning."""
    import os

    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "tinynet.py").write_text(TINY_MODULE)
    spec = write_spec(
        {
            "name": "own_fork",
            "data": {"name": "digits", "n_train": 200},
            "model": {"name": "flax", "module": "tinynet:TinyNet", "width": 4},
            "train": {"batch_size": 50, "epochs": 2, "eval_points": 1},
            "grid": {"model.width": [4, 8]},
            "resources": {"cpus": 1},
        }
    )
    path = [str(tmp_path / "mods")] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    done = subprocess.run(
        [sys.executable, "-m", "dd", "sweep", str(spec), "--results", str(tmp_path / "r")]
        + ["--no-curves", "--cpus", "1", "--quiet"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "os.fork() was called" not in done.stderr, done.stderr[-3000:]


@pytest.mark.ray
@pytest.mark.slow
def test_a_pack_that_hangs_is_failed_as_stalled_and_the_sweep_ends(tmp_path):
    """A training pack whose worker never reaches an evaluation point (user code that hangs)
    is stopped after resources.stall_minutes, recorded as failed with the reason, and the
    sweep ends with exit 1 instead of waiting forever; dd status shows it."""
    from faultsite.dd_faults import env as faults_env

    spec = {
        "name": "hangs",
        "data": {"name": "digits", "n_train": 100},
        "model": {"name": "mlp", "width": 4},
        "train": {"batch_size": 50, "epochs": 2, "eval_points": 1},
        "grid": {"seed": [0, 1]},
        "resources": {"stall_minutes": 0.05},
    }
    path = tmp_path / "hangs.yaml"
    path.write_text(yaml.safe_dump(spec))
    results = tmp_path / "r"
    done = run_dd(
        "sweep",
        path,
        "--results",
        results,
        "--cpus",
        "1",
        "--no-curves",
        env=faults_env(hang_before_compile=600),
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "stalled: no epoch reached" in done.stderr
    status = run_dd("status", "hangs", "--results", results)
    assert "failed pack" in status.stdout and "stalled" in status.stdout, status.stdout
