"""The training engine: packs equal trials alone, one compile per pack shape, divergence."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from dd.engine.optim import lr_factor
from dd.engine.options import PackOptions
from dd.engine.train import eval_epochs, train_pack
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from dd.spec.config import EvalExtra, Train

MLP_SPEC = {
    "name": "mlp",
    "data": {"name": "mnist1d", "n_train": 300, "train_pool": 400, "n_test": 500},
    "model": {"name": "mlp", "width": 16},
    "train": {
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "batch_size": 50,
        "epochs": 6,
        "eval_points": 3,
    },
}


def _pack(grid: dict, **changes):
    mapping = {**MLP_SPEC, **changes, "grid": grid}
    spec = parse_spec(mapping)
    packs = make_packs(list(spec.trials), spec.resources)
    return spec, packs


@pytest.mark.slow
def test_a_trial_trained_in_a_pack_equals_the_trial_alone():
    _, (pack,) = _pack(
        {
            "seed": [0, 1],
            "data.n_train": [150, 300],
            "data.label_noise": [0.0, 0.2],
            "train.lr": [0.05, 0.02],
            "train.weight_decay": [0.0, 1e-3],
        }
    )
    assert len(pack.trials) == 32, "seed, n_train, noise, lr and wd vary inside one pack"
    key = pack.key
    together = train_pack(list(pack.trials), key)
    for i in (0, 7, 18, 31):
        alone = train_pack([pack.trials[i]], key)[0]
        assert [r["epoch"] for r in alone] == [r["epoch"] for r in together[i]]
        for row_alone, row_pack in zip(alone, together[i], strict=True):
            for metric, value in row_alone.items():
                np.testing.assert_allclose(
                    row_pack[metric], value, rtol=2e-5, atol=1e-6, err_msg=f"trial {i} {metric}"
                )


@pytest.mark.slow
def test_one_compile_per_pack_shape(no_compile_cache):
    """Packs of one key reuse its programs (the MLP family's ladder: widths below 64 share
    one)."""
    compiles = []
    listener = lambda event, duration, **kw: compiles.append(event)  # noqa: E731
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        _, (first,) = _pack({"seed": [0, 1, 2, 3]})
        _, (second,) = _pack(
            {
                "zip": [
                    {
                        "seed": [5, 6, 7, 8],
                        "data.n_train": [100, 300, 200, 300],
                        "train.lr": [0.01, 0.03, 0.02, 0.05],
                    }
                ]
            }
        )
        _, (narrow,) = _pack({"seed": [0, 1, 2, 3]}, model={"name": "mlp", "width": 24})
        _, (wider,) = _pack({"seed": [0, 1, 2, 3]}, model={"name": "mlp", "width": 80})
        counts = []
        for pack in (first, second, narrow, wider):
            compiles.clear()
            train_pack(list(pack.trials), pack.key)
            counts.append(sum(e == "/jax/core/compile/backend_compile_duration" for e in compiles))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert counts[0] > 0
    assert counts[1] == 0, "new seeds, n_train and lr reuse the compiled programs"
    # MLPs up to 64 wide share one 64-wide training program; a new width compiles only the
    # draw of its initial parameters at its own width (dd.engine.step.init_replicas)
    assert counts[2] == 1, "MLPs up to 64 wide share one 64-wide program"
    assert counts[3] > 0, "a width past it is a new shape"


@pytest.mark.slow
def test_a_narrow_mlp_in_the_wide_program_computes_the_narrow_network(tmp_path):
    """Width 9 trains inside the pack's wider program (as wide as its widest trial or wider);
    its saved parameters have width-9 shapes, and the width-9 network on them gives the test
    error the wide program measured."""
    from dd.engine.checkpoint import load_params
    from dd.engine.data import load_dataset
    from dd.engine.device_data import prepare_inputs
    from dd.models.registry import make_model

    spec, (pack,) = _pack({"seed": [0, 1], "model.width": [9, 40]})
    assert len(pack.trials) == 4 and pack.key.model.width >= 40
    files = [tmp_path / f"{i}.msgpack" for i in range(4)]
    rows = train_pack(list(pack.trials), pack.key, PackOptions(param_files=files))
    data = load_dataset(pack.trials[0].data)
    x = prepare_inputs(data.x_test, data.x_mean, data.x_std)
    for trial, trial_rows, path in zip(pack.trials, rows, files, strict=True):
        params = load_params(path)
        assert params["hidden_1"]["kernel"].shape == (trial.model.width, trial.model.width)
        logits = make_model(trial).apply({"params": params}, x)
        error = float(np.mean(np.argmax(logits, -1) != data.y_test))
        assert error == pytest.approx(trial_rows[-1]["test_error"], abs=1.5 / len(x))
        assert (
            trial_rows[-1]["n_params"]
            == (40 + 1) * trial.model.width
            + (trial.model.width + 1) * trial.model.width
            + (trial.model.width + 1) * 10
        )


@pytest.mark.slow
def test_a_narrow_mlp_starts_with_its_own_fan_in_variance():
    from dd.engine.padding import place
    from dd.models.registry import make_model, program_trial

    spec, (pack,) = _pack({"seed": [0]})
    program = program_trial(pack.trials[0])
    wide, width = program.model.width, 9
    assert wide == 64
    x = np.zeros((1, 40), np.float32)
    own = make_model(program.__class__(**{**program.__dict__, "model": pack.trials[0].model}))
    own = own.clone(width=width)
    params = jax.vmap(lambda k: own.init(k, x)["params"])(jax.random.split(jax.random.key(0), 64))
    placed = jax.vmap(lambda p: place(program, p, width))(params)
    live = placed["hidden_1"]["kernel"][:, :width, :width]
    assert float(np.var(live)) == pytest.approx(1 / width, rel=0.1)
    assert placed["hidden_1"]["kernel"].shape[1:] == (wide, wide)
    assert not np.any(placed["hidden_1"]["kernel"][:, width:, :])
    assert not np.any(placed["hidden_1"]["kernel"][:, :, width:])
    assert not np.any(placed["hidden_0"]["kernel"][:, :, width:])
    assert not np.any(placed["hidden_0"]["bias"][:, width:])
    assert not np.any(placed["logits"]["kernel"][:, width:, :])
    np.testing.assert_array_equal(live, params["hidden_1"]["kernel"])


@pytest.mark.slow
def test_a_diverging_trial_stops_alone():
    _, (pack,) = _pack({"seed": [0], "train.lr": [0.05, 1e6]})
    rows = train_pack(list(pack.trials), pack.key)
    good, bad = (rows[0], rows[1]) if pack.trials[0].train.lr < 1 else (rows[1], rows[0])
    assert all(r.get("status", "ok") == "ok" for r in good)
    assert all(np.isfinite(r["train_loss"]) for r in good)
    assert all(r["status"] == "diverged" for r in bad)
    assert bad[0]["diverged_step"] >= 0
    assert "train_loss" not in bad[-1], "no metrics after the divergence"


@pytest.mark.slow
def test_label_noise_metrics_and_memorisation():
    _, (pack,) = _pack(
        {"seed": [0]},
        data={**MLP_SPEC["data"], "label_noise": 0.3, "n_train": 200},
        model={"name": "mlp", "width": 256},
        train={
            **MLP_SPEC["train"],
            "optimizer": "adam",
            "lr": 3e-3,
            "momentum": 0.0,
            "epochs": 300,
            "eval_points": 4,
        },
    )
    rows = train_pack(list(pack.trials), pack.key)[0]
    final = rows[-1]
    assert final["train_error"] < 0.02, "a wide net memorises noisy labels"
    assert final["train_error_noisy"] < 0.05
    assert final["noisy_true_acc"] < 0.3, "memorised noisy labels are not their true labels"
    assert final["test_error"] > final["train_error"] + 0.2


def test_schedules():
    steps = np.array([0, 511, 512, 2048])
    inv = lr_factor(Train(schedule="inverse_sqrt", schedule_steps=512), steps, 4096)
    np.testing.assert_allclose(inv, [1, 1, 1 / np.sqrt(2), 1 / np.sqrt(5)], rtol=1e-6)
    cos = lr_factor(Train(schedule="cosine"), np.array([0, 50, 100]), 100)
    np.testing.assert_allclose(cos, [1, 0.5, 0], atol=1e-6)
    warm = lr_factor(Train(warmup_steps=10), np.array([0, 4, 9, 50]), 100)
    np.testing.assert_allclose(warm, [0.1, 0.5, 1, 1], rtol=1e-6)
    assert eval_epochs(Train(epochs=500, eval_points=10))[-1] == 500
    assert eval_epochs(Train(epochs=500, eval_points=10))[0] == 1
    assert eval_epochs(Train(epochs=10, eval_points=5, eval_spacing="linear")) == [2, 4, 6, 8, 10]


@pytest.mark.slow
def test_a_pack_resumed_from_its_checkpoint_ends_with_the_same_numbers(tmp_path, monkeypatch):
    import dd.engine.train as train_module

    _, (pack,) = _pack({"seed": [0, 1], "data.label_noise": [0.0, 0.3]})
    key, trials = pack.key, list(pack.trials)
    uninterrupted = train_pack(trials, key)
    checkpoint = tmp_path / "pack.msgpack"
    real_train_to, calls = train_module.train_to, []

    def crash_on_third_evaluation(*args, **kwargs):
        calls.append(args[-1])  # measure: this call ends at an evaluation point
        if sum(calls) == 3:
            raise RuntimeError("worker killed")
        return real_train_to(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_to", crash_on_third_evaluation)
    with pytest.raises(RuntimeError, match="worker killed"):
        train_pack(trials, key, PackOptions(checkpoint=checkpoint, checkpoint_every=2))
    assert checkpoint.exists(), "the state at epoch 4 was saved before the crash"
    starts = []

    def record_start(program, data, setups, replicas, first, last, measure):
        starts.append(int(first))
        return real_train_to(program, data, setups, replicas, first, last, measure)

    monkeypatch.setattr(train_module, "train_to", record_start)
    resumed = train_pack(trials, key, PackOptions(checkpoint=checkpoint, checkpoint_every=2))
    assert starts == [4], "training resumed at the epoch-4 checkpoint, not from the start"
    np.testing.assert_equal(resumed, uninterrupted)  # exactly, NaN (no noised labels) included
    checkpoint.write_bytes(b"not a checkpoint")  # a damaged file is ignored, not trusted
    np.testing.assert_equal(
        train_pack(trials, key, PackOptions(checkpoint=checkpoint, checkpoint_every=2)),
        uninterrupted,
    )


def test_a_checkpoint_of_other_shapes_is_ignored(tmp_path, capsys):
    """A pack whose program changed shape (an older dd's wider conv program) starts afresh
    rather than loading parameters its program cannot take."""
    from dd.engine import checkpoint as ckpt

    path = tmp_path / "pack.ckpt"
    ckpt.save(path, {"kernel": np.ones((2, 3, 40))}, 5, [[], []])
    template = {"kernel": np.zeros((2, 3, 33))}
    state, epoch, rows = ckpt.restore(path, template, 2)
    assert epoch == 0 and state is template and rows == [[], []]
    assert "another program's shapes" in capsys.readouterr().err
    assert ckpt.restore(path, {"kernel": np.zeros((2, 3, 40))}, 2)[1] == 5, "same shapes resume"


def test_an_eval_window_adds_its_epochs_to_the_schedule():
    window = {"start": 60, "stop": 80, "points": 5}
    plain = eval_epochs(Train(epochs=100, eval_points=4))
    dense = eval_epochs(Train(epochs=100, eval_points=4, eval_extra=EvalExtra(**window)))
    assert dense == sorted(set(plain) | {60, 65, 70, 75, 80})
    logged = EvalExtra(start=10, stop=1000, points=3, spacing="log")
    assert eval_epochs(Train(epochs=1000, eval_points=1, eval_extra=logged)) == [1, 10, 100, 1000]


@pytest.mark.slow
def test_a_spec_with_an_eval_window_gets_rows_at_its_epochs():
    mapping = {
        "name": "window",
        "data": {"name": "modular", "p": 7, "op": "x+y", "train_fraction": 0.5},
        "model": {"name": "mlp", "width": 8},
        "train": {
            "optimizer": "adamw",
            "lr": 0.01,
            "batch_size": "full",
            "epochs": 12,
            "eval_points": 2,
            "eval_extra": {"start": 5, "stop": 8, "points": 4},
        },
    }
    spec = parse_spec(mapping)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    (rows,) = train_pack(list(pack.trials), pack.key)
    assert [r["step"] for r in rows] == [1, 5, 6, 7, 8, 12], "full batch: a step per epoch"
