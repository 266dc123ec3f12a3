"""Grokking on stored rows: a small transformer groks with weight decay and memorises
without, and its Fourier measures tell the two apart; times and phases from rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dd.analysis.aggregate import write_curves
from dd.analysis.curves.grok_cells import cell_lines, grok_cells
from dd.analysis.curves.grok_times import first_step, grok_table, summary
from dd.datasets.modular import table as modular_table
from dd.engine.checkpoint import load_params
from dd.models.registry import make_model
from dd.plan.sweep import parse_spec
from dd.run.execute import run_sweep
from dd.spec.ids import trial_id
from dd.store.sweep import SweepStore

GROK_SPEC = {  # p = 31, half the pairs: groks in a few hundred full-batch steps on a CPU
    "name": "grok_small",
    "data": {"name": "modular", "p": 31, "train_fraction": 0.5},
    "model": {"name": "transformer", "width": 64, "heads": 4, "d_mlp": 256},
    "train": {
        "optimizer": "adamw",
        "lr": 0.01,
        "b2": 0.98,
        "warmup_steps": 10,
        "batch_size": "full",
        "epochs": 1000,
        "eval_points": 25,
        "save_params": True,
    },
    "grid": {"train.weight_decay": [0.0, 1.0]},
    "seed": 1,
    "resources": {"cpus": 2},
}


@pytest.fixture(scope="module")
def grokked(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("grok")
    spec = parse_spec(GROK_SPEC)
    report = run_sweep(spec, root, quiet=True)
    assert report.trials_run == 2 and not report.failed_packs
    store = SweepStore(root, spec.name)
    rows = store.read_results().sort_by([("trial_id", "ascending"), ("step", "ascending")])
    by_decay = {}
    for trial in spec.trials:
        mine = rows.filter(pa.compute.equal(rows["trial_id"], trial_id(trial))).to_pylist()
        by_decay[trial.train.weight_decay] = (trial, mine)
    return spec, store, by_decay


def test_weight_decay_groks_and_no_weight_decay_memorises(grokked):
    spec, _, by_decay = grokked
    _, grok_rows = by_decay[1.0]
    _, mem_rows = by_decay[0.0]
    steps = np.array([r["step"] for r in grok_rows])
    for rows in (grok_rows, mem_rows):
        assert 1 - rows[-1]["train_error"] == 1.0, "both fit every training pair"
    t_train = first_step(steps, np.array([1 - r["train_error"] for r in grok_rows]), 0.99)
    t_test = first_step(steps, np.array([1 - r["test_error"] for r in grok_rows]), 0.99)
    assert t_test >= 5 * t_train, (t_train, t_test)
    assert max(1 - r["test_error"] for r in mem_rows) < 0.95


def test_a_grokked_embedding_is_sparse_in_fourier_space_and_a_memorised_one_dense(grokked):
    _, _, by_decay = grokked
    _, grok_rows = by_decay[1.0]
    _, mem_rows = by_decay[0.0]
    final = grok_rows[-1]
    assert final["n_key_freqs"] <= 8 and len(final["key_freqs"]) == final["n_key_freqs"]
    norms = np.array(final["fourier_norms"])
    assert len(norms) == 16
    assert np.sum(np.sort(norms**2)[::-1][:8]) >= 0.9 * np.sum(norms**2)
    assert final["fourier_gini"] > 2 * grok_rows[0]["fourier_gini"], "Gini rose in training"
    assert mem_rows[-1]["n_key_freqs"] > 8, "the memorising embedding stays dense"
    assert mem_rows[-1]["fourier_gini"] < final["fourier_gini"] / 2


def test_the_excluded_loss_rises_before_the_test_accuracy_jumps(grokked):
    _, _, by_decay = grokked
    _, rows = by_decay[1.0]
    jump = next(i for i, r in enumerate(rows) if 1 - r["test_error"] >= 0.9)
    before = rows[:jump]
    low = int(np.argmin([r["excluded_loss"] for r in before]))
    high = low + int(np.argmax([r["excluded_loss"] for r in before[low:]]))
    assert before[high]["excluded_loss"] > 1.5 * before[low]["excluded_loss"]
    assert before[high]["train_loss"] < 0.1, "it rises while the training loss is small"
    assert 1 - before[high]["test_error"] < 0.9


def test_saved_parameters_load_and_reproduce_the_stored_test_accuracy(grokked):
    spec, store, by_decay = grokked
    trial, rows = by_decay[1.0]
    params = load_params(store.dir / "params" / f"{trial_id(trial)}.msgpack")
    pairs, answers = modular_table(31, "x+y")
    predicted = np.asarray(make_model(trial).apply({"params": params}, pairs)).argmax(-1)
    accuracy_all = np.mean(predicted == answers)
    n_test = trial.data.n_test
    stored_right = (1 - rows[-1]["test_error"]) * n_test + (1 - rows[-1]["train_error"]) * (
        trial.data.n_train
    )
    np.testing.assert_allclose(accuracy_all * len(pairs), stored_right, atol=1e-6)


def test_curves_write_grokking_figures_and_times(grokked):
    spec, store, _ = grokked
    aggregate = write_curves(store, spec)
    names = {p.name for p in aggregate.figures}
    assert {"grokking.png", "grok_times.png", "nanda_phases.png"} <= names
    phases = dict(
        zip(
            aggregate.results["grok_times"].table["train_weight_decay"].to_pylist(),
            aggregate.results["grok_times"].table["phase"].to_pylist(),
            strict=True,
        )
    )
    assert phases == {0.0: "memorisation", 1.0: "grokking"}


def _rows(trials: dict[str, list[tuple]], noise: float = 0.0) -> pa.Table:
    """Rows of hand-made trials: (step, train acc, test acc[, memorised, inverted, clean])."""
    records = []
    for i, (tid, points) in enumerate(trials.items()):
        for step, train, test, *corrupt in points:
            memorised, inverted, clean = corrupt or (np.nan, np.nan, train)
            records.append(
                {
                    "trial_id": tid,
                    "seed": 0,
                    "train_weight_decay": float(i),
                    "data_label_noise": noise,
                    "step": step,
                    "train_error": 1 - train,
                    "test_error": 1 - test,
                    "train_error_noisy": 1 - memorised,
                    "noisy_true_acc": inverted,
                    "train_error_clean": 1 - clean,
                }
            )
    return pa.Table.from_pylist(records)


def test_liu_phases_from_rows():
    spec = parse_spec({**GROK_SPEC, "grid": {"train.weight_decay": [0.0, 1.0, 2.0, 3.0]}})
    rows = _rows(
        {
            "a": [(10, 0.95, 0.92), (100, 1.0, 1.0)],  # together: comprehension
            "b": [(10, 0.95, 0.1), (100, 1.0, 1.0)],  # 10x later: grokking
            "c": [(10, 0.95, 0.1), (100, 1.0, 0.5)],  # memorisation
            "d": [(10, 0.2, 0.1), (100, 0.5, 0.3)],
        }
    )  # confusion
    table = grok_table(rows, spec)
    assert table["phase"].to_pylist() == ["comprehension", "grokking", "memorisation", "confusion"]
    assert table["t_generalise"].to_pylist()[:2] == [100.0, 100.0]
    assert np.isnan(table["t_generalise"].to_pylist()[2])


def test_a_grokking_time_carries_the_evaluations_that_bracket_it():
    """Rows hold evaluations, not the step of the jump: T is the first evaluation at the
    accuracy, and the evaluation before it bounds the jump from below."""
    spec = parse_spec({**GROK_SPEC, "grid": {"train.weight_decay": [0.0, 1.0, 2.0]}})
    coarse = [(10, 0.5, 0.1), (20, 1.0, 0.1), (900, 1.0, 0.2), (1320, 1.0, 1.0)]
    dense = coarse[:3] + [(1000, 1.0, 0.3), (1100, 1.0, 1.0), (1320, 1.0, 1.0)]
    never = [(10, 1.0, 0.1), (1320, 1.0, 0.2)]
    table = grok_table(_rows({"a": coarse, "b": dense, "c": never}), spec).to_pydict()
    assert table["t_generalise"][:2] == [1320.0, 1100.0]
    assert table["t_generalise_after"][:2] == [900.0, 1000.0], "the evaluation before"
    assert table["t_memorise"] == [20.0, 20.0, 10.0]
    assert table["t_memorise_after"] == [10.0, 10.0, 0.0], "reached at the first: after 0"
    assert np.isnan(table["t_generalise"][2]) and np.isnan(table["t_generalise_after"][2])
    line = summary(pa.Table.from_pydict(table))[0]
    assert "T_generalise 1210 in (950, 1210]" in line, line
    assert "T_memorise 20 in (10, 20]" in line, line


def test_a_cells_grokking_time_carries_the_median_bracket_over_its_seeds():
    spec = parse_spec({**GROK_SPEC, "grid": {"seed": [0, 1, 2]}})
    rows = _rows(
        {
            "a": [(10, 1.0, 0.1), (900, 1.0, 0.2), (1320, 1.0, 1.0)],
            "b": [(10, 1.0, 0.1), (1000, 1.0, 0.3), (1100, 1.0, 1.0)],
            "c": [(10, 1.0, 0.1), (1320, 1.0, 0.2)],  # never: after the budget
        }
    )
    rows = rows.set_column(1, "seed", pa.array([0, 0, 0, 1, 1, 1, 2, 2]))
    cells = grok_cells(grok_table(rows, spec), [])  # one cell: the seeds
    (cell,) = cells.to_pylist()
    assert cell["t_generalise"] == 1320.0 and cell["t_generalise_after"] == 1000.0
    line = cell_lines(cells, [])[1]
    assert "T_generalise 1320 in (1000, 1320] (2 of 3 seeds: 1100-1320)" in line, line


def test_doshi_phases_from_rows_with_corrupted_labels():
    spec = parse_spec({**GROK_SPEC, "grid": {"train.weight_decay": [0.0, 1.0, 2.0, 3.0, 4.0]}})
    rows = _rows(
        {
            "a": [(100, 0.8, 0.99, 0.0, 0.97, 1.0)],  # inversion
            "b": [(100, 1.0, 0.95, 1.0, 0.0, 1.0)],  # coexistence
            "c": [(100, 1.0, 0.2, 1.0, 0.0, 1.0)],  # memorisation
            "d": [(100, 0.7, 0.3, 0.1, 0.1, 0.95)],  # forgetting
            "e": [(100, 0.3, 0.1, 0.1, 0.1, 0.3)],
        },
        noise=0.2,
    )  # confusion
    assert grok_table(rows, spec)["phase"].to_pylist() == [
        "inversion",
        "coexistence",
        "memorisation",
        "forgetting",
        "confusion",
    ]


def test_the_trials_view_holds_each_trials_final_and_best_evaluation(grokked):
    from dd import api

    spec, store, by_decay = grokked
    trials = api.query(
        "SELECT train_weight_decay AS wd, step, n_evals, best_test_error, "
        "best_test_error_step FROM trials ORDER BY wd",
        spec.name,
        store.root,
    )
    for row in trials.to_pylist():
        rows = by_decay[row["wd"]][1]
        best = min(rows, key=lambda r: (r["test_error"], r["step"]))
        assert row["step"] == rows[-1]["step"] == 1000 and row["n_evals"] == len(rows)
        assert row["best_test_error"] == best["test_error"]
        assert row["best_test_error_step"] in {
            r["step"] for r in rows if r["test_error"] == best["test_error"]
        }


def test_grokking_times_are_drawn_against_a_categorical_axis():
    """A spec whose first axis is an objective (strings) still gets its times figure: the
    values stand at category positions, labelled, in the grid's order."""
    from dd.analysis.curves.grok_times import plot_grok_times

    spec = parse_spec({**GROK_SPEC, "grid": {"train.objective": ["cross_entropy", "stablemax"]}})
    rows = _rows({"a": [(10, 1.0, 0.1), (100, 1.0, 1.0)], "b": [(10, 1.0, 0.1), (100, 1.0, 0.2)]})
    objective = ["cross_entropy"] * 2 + ["stablemax"] * 2
    rows = rows.append_column("train_objective", pa.array(objective))
    fig = plot_grok_times(grok_table(rows, spec), spec, "train.objective")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cross_entropy", "stablemax"]
