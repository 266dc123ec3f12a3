"""Image data end to end: fabricated MNIST (IDX) and CIFAR-10 (pickle) files train networks."""

from __future__ import annotations

import numpy as np
import pytest

from dd.cli import main
from dd.engine.train import train_pack
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from helpers import cifar_batch, idx_split, write_cifar10, write_idx_dataset


def _train(mapping: dict):
    spec = parse_spec(mapping)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    return train_pack(list(pack.trials), pack.key)


@pytest.mark.slow
def test_cnn_with_augmentation_trains_on_cifar10_files(tmp_path):
    write_cifar10(
        tmp_path,
        {f"data_batch_{i}": cifar_batch(16, 10) for i in range(1, 6)}
        | {"test_batch": cifar_batch(24, 10)},
    )
    rows = _train(
        {
            "name": "c",
            "data": {
                "name": "cifar10",
                "n_train": 64,
                "n_test": 24,
                "data_dir": str(tmp_path),
                "augment": True,
                "label_noise": 0.2,
            },
            "model": {"name": "cnn", "width": 2},
            "train": {
                "optimizer": "adam",
                "lr": 1e-3,
                "batch_size": 16,
                "epochs": 2,
                "eval_points": 2,
            },
            "grid": {"seed": [0, 1]},
        }
    )
    assert len(rows) == 2 and [r["epoch"] for r in rows[0]] == [1, 2]
    for row in rows[0] + rows[1]:
        assert np.isfinite(row["test_loss"]) and 0 <= row["test_error"] <= 1
        # 3x3 kernels, BatchNorm's scale and bias per channel (2+4+8+16; no conv bias before
        # BatchNorm), the dense head
        assert row["n_params"] == 3**2 * (3 * 2 + 42 * 4) + 30 * 2 + 8 * 2 * 10 + 10


@pytest.mark.slow
def test_mlp_and_resnet_train_on_mnist_idx_files(tmp_path):
    write_idx_dataset(
        tmp_path / "mnist",
        {"train": idx_split(40, side=28), "t10k": idx_split(10, side=28)},
        gz=True,
    )
    for model in ({"name": "mlp", "width": 8}, {"name": "resnet18", "width": 1}):
        rows = _train(
            {
                "name": "m",
                "data": {"name": "mnist", "n_train": 40, "n_test": 10, "data_dir": str(tmp_path)},
                "model": model,
                "train": {"batch_size": 20, "epochs": 1, "eval_points": 1},
            }
        )
        assert np.isfinite(rows[0][-1]["train_loss"])


def test_missing_or_short_data_files_are_one_line_errors(tmp_path, write_spec, capsys):
    spec = {
        "name": "m",
        "data": {
            "name": "mnist",
            "n_train": 100,
            "n_test": 10,
            "data_dir": str(tmp_path / "nowhere"),
        },
        "model": {"name": "mlp", "width": 8},
        "train": {"batch_size": 50},
    }
    results = tmp_path / "results"
    assert main(["sweep", str(write_spec(spec)), "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err
    write_idx_dataset(
        tmp_path / "nowhere" / "mnist",
        {"train": idx_split(40, side=28), "t10k": idx_split(10, side=28)},
    )
    assert main(["sweep", str(write_spec(spec)), "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert "n_train = 100 but the training files hold 40" in err
    assert not list(results.glob("*/packs/*"))
