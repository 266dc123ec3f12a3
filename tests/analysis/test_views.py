"""The derived tables as query views: grok_times, landmarks, one view per curve table and
emc, each with its sweep column, over the curve files the aggregator writes; a sweep without
such a file leaves the other queries alone."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dd import api
from dd.analysis.aggregate import write_curves
from dd.analysis.query import query_arrow
from dd.cli import main
from dd.plan.sweep import parse_spec
from dd.spec.ids import trial_id
from dd.store.schema import pack_table
from dd.store.sweep import SweepStore

GROK = {  # fabricated rows, no training: weight decay groks at step 80, none never does
    "name": "grok_tiny",
    "data": {"name": "modular", "p": 7, "train_fraction": 0.5},
    "model": {"name": "transformer", "width": 8, "heads": 2, "d_mlp": 16},
    "train": {"optimizer": "adamw", "batch_size": "full", "epochs": 100, "eval_points": 5},
    "grid": {"train.weight_decay": [0.0, 1.0], "seed": [0, 1]},
}
MLP = {
    "name": "mlp_tiny",
    "data": {"name": "mnist1d", "n_train": 120, "train_pool": 400, "n_test": 300},
    "model": {"name": "mlp", "width": 12},
    "train": {"batch_size": 40, "epochs": 4, "eval_points": 2},
    "grid": {"model.width": [8, 12, 16], "seed": [0, 1]},
}


def _grok_rows(trial) -> list[dict]:
    grok = trial.train.weight_decay > 0
    rows = []
    for step in (5, 10, 20, 40, 80, 100):  # train fitted at 10, test 8 times later
        test = 0.0 if grok and step >= 80 else 0.9
        rows.append(
            {"step": step, "epoch": step, "train_error": 0.0 if step >= 10 else 0.5,
             "test_error": test, "test_loss": 3 * test}
        )  # fmt: skip
    return rows


def _mlp_rows(trial) -> list[dict]:
    return [
        {"step": e, "epoch": e, "test_error": 0.5 - 0.01 * trial.model.width + 0.01 * trial.seed,
         "train_error": 0.1}
        for e in (2, 4)
    ]  # fmt: skip


def store_sweep(root, mapping, make_rows, curves=True) -> SweepStore:
    """A finished sweep of fabricated rows, its curves written (``curves``) as dd sweep's are."""
    spec = parse_spec(mapping)
    store = SweepStore(root, spec.name)
    store.write_pack(
        "p0",
        pack_table(
            sweep=spec.name,
            pack_id="p0",
            trial_ids=[trial_id(t) for t in spec.trials],
            trials=list(spec.trials),
            rows=[make_rows(t) for t in spec.trials],
            wall_time_s=0.0,
            jax_version="none",
        ),
    )
    store.write_spec(spec.mapping)
    if curves:
        write_curves(store, spec)
    return store


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A grokking sweep and a model-wise one, side by side (read only by the tests)."""
    where = tmp_path_factory.mktemp("views")
    store_sweep(where, GROK, _grok_rows)
    store_sweep(where, MLP, _mlp_rows)
    return where


@pytest.mark.slow
def test_which_trials_grokked_and_when(root):
    table = query_arrow(
        "SELECT sweep, train_weight_decay AS wd, t_generalise, t_generalise_after, phase, "
        "current FROM grok_times "
        "ORDER BY wd, seed",
        root,
        "grok_tiny",
    ).to_pylist()
    assert [r["sweep"] for r in table] == ["grok_tiny"] * 4 and all(r["current"] for r in table)
    assert [r["t_generalise"] for r in table][2:] == [80.0, 80.0], table
    assert [r["t_generalise_after"] for r in table][2:] == [40.0, 40.0], "evaluated at 40, 80"
    assert [r["phase"] for r in table] == ["memorisation"] * 2 + ["grokking"] * 2


def test_dd_query_answers_select_star_from_grok_times(root, capsys):
    assert main(["query", "SELECT * FROM grok_times", "--results", str(root)]) == 0
    out = capsys.readouterr().out
    assert "t_generalise" in out and "(4 rows)" in out, out


def test_the_landmarks_and_curve_views_of_every_sweep(root):
    kinds = query_arrow(
        "SELECT sweep, kind, count(*) AS n FROM landmarks GROUP BY ALL ORDER BY ALL", root
    ).to_pylist()
    assert {(r["sweep"], r["kind"]) for r in kinds} >= {
        ("grok_tiny", "grokking"),
        ("mlp_tiny", "model_wise"),
        ("mlp_tiny", "epoch_wise"),
    }
    # where is the threshold of each sweep?
    model_wise = query_arrow(
        "SELECT sweep, threshold_x FROM landmarks WHERE kind = 'model_wise'", root
    ).to_pylist()
    assert [r["sweep"] for r in model_wise] == ["mlp_tiny"]
    points = query_arrow(
        "SELECT x, mean FROM model_wise WHERE metric = 'test_error' ORDER BY x", root
    ).to_pylist()
    assert [p["x"] for p in points] == [8.0, 12.0, 16.0]
    assert points[1]["mean"] == pytest.approx(0.5 - 0.12 + 0.005)
    grokking = query_arrow("SELECT DISTINCT sweep FROM grokking", root)
    assert grokking["sweep"].to_pylist() == ["grok_tiny"]
    seeds = query_arrow("SELECT count(*) AS n FROM model_wise_seeds", root, "mlp_tiny")
    stored = pq.read_table(root / "mlp_tiny" / "curves" / "model_wise_seeds.parquet")
    assert seeds["n"].to_pylist() == [stored.num_rows] and stored.num_rows >= 3 * 2 * 2


def test_a_sweep_without_a_curve_file_has_no_such_view_and_the_others_still_answer(root, tmp_path):
    from dd.spec.errors import DDError

    with pytest.raises(DDError, match="grok_times"):
        query_arrow("SELECT * FROM grok_times", root, "mlp_tiny")
    assert query_arrow("SELECT count(*) AS n FROM trials", root, "mlp_tiny")["n"].to_pylist() == [6]
    shutil.copytree(root, tmp_path / "root")
    store_sweep(tmp_path / "root", {**MLP, "name": "no_curves"}, _mlp_rows, curves=False)
    both = query_arrow("SELECT count(*) AS n FROM trials", tmp_path / "root")
    assert both["n"].to_pylist() == [4 + 6 + 6]
    grok = query_arrow("SELECT DISTINCT sweep FROM grok_times", tmp_path / "root")
    assert grok["sweep"].to_pylist() == ["grok_tiny"]


def test_api_query_reads_the_views_and_the_sandbox_still_refuses_other_files(root, tmp_path):
    from dd.spec.errors import DDError

    frame = api.query("SELECT sweep, phase FROM grok_times", "grok_tiny", root).to_pandas()
    assert sorted(frame["phase"]) == ["grokking"] * 2 + ["memorisation"] * 2
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1]}), other)
    with pytest.raises(DDError):
        query_arrow(f"SELECT * FROM read_parquet('{other}')", root)


def test_a_damaged_curve_table_is_left_out_with_a_warning_and_the_rest_answer(
    root, tmp_path, capsys
):
    shutil.copytree(root, tmp_path / "root")
    (tmp_path / "root" / "grok_tiny" / "curves" / "grok_times.parquet").write_bytes(b"PAR1 garbled")
    n = query_arrow("SELECT count(*) AS n FROM trials", tmp_path / "root", "grok_tiny")
    assert n["n"].to_pylist() == [4]
    err = capsys.readouterr().err
    assert "grok_times.parquet: unreadable curve table" in err and "dd curves grok_tiny" in err
    marks = query_arrow("SELECT DISTINCT kind FROM landmarks", tmp_path / "root", "grok_tiny")
    assert set(marks["kind"].to_pylist()) == {"grokking", "epoch_wise"}
