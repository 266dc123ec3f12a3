"""Datasets and per-trial draws: label noise, deterministic subsets, pack-independent rows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dd.datasets.digits import DigitsData
from dd.datasets.gaussian import GaussianData
from dd.datasets.mnist1d import Mnist1dData
from dd.engine.data import load_dataset
from dd.engine.device_data import noisy_labels, to_device, training_rows
from dd.models.rng import trial_key


@pytest.mark.slow
def test_label_noise_replaces_by_a_different_class_at_the_given_rate():
    y = jnp.asarray(np.random.default_rng(0).integers(0, 10, 20000))
    noisy, mask = noisy_labels(jax.random.key(1), y, 10, 0.3)
    noisy, mask, y = map(np.asarray, (noisy, mask, y))
    assert np.all(noisy[mask] != y[mask]), "a noised label is always a different class"
    assert np.all(noisy[~mask] == y[~mask])
    assert abs(mask.mean() - 0.3) < 0.02
    # the replacement class is uniform over the 9 others
    offsets = (noisy[mask] - y[mask]) % 10
    counts = np.bincount(offsets, minlength=10)[1:]
    assert counts.min() > 0.8 * counts.mean()
    _, none = noisy_labels(jax.random.key(1), y, 10, 0.0)
    assert not np.asarray(none).any()


@pytest.mark.slow
def test_training_rows_are_deterministic_and_independent_of_pack_width():
    config = DigitsData(n_train=100, label_noise=0.2)
    dataset = to_device(load_dataset(config), config, 1000)
    key = trial_key(7)
    short = training_rows(key, dataset, 100, 100, 0.2)
    long = training_rows(key, dataset, 300, 100, 0.2)  # padded as in a pack with n_train 300
    again = training_rows(trial_key(7), dataset, 100, 100, 0.2)
    for name in ("x", "y", "y_true", "noised"):
        np.testing.assert_array_equal(short[name], long[name][:100])
        np.testing.assert_array_equal(short[name], again[name])
    assert not np.asarray(long["mask"][100:]).any() and not np.asarray(long["noised"][100:]).any()
    other = training_rows(trial_key(8), dataset, 100, 100, 0.2)
    assert not np.array_equal(short["x"], other["x"])


@pytest.mark.slow
def test_gaussian_rows_follow_the_teacher():
    data = GaussianData(dim=5, n_train=4000, n_test=100, beta_norm2=4.0, noise_var=0.5)
    dataset = load_dataset(data)
    with jax.enable_x64(True):
        on_device = to_device(dataset, data, 1000)
        rows = training_rows(trial_key(0), on_device, 4000, 4000, 0.0)
        x, y = np.asarray(rows["x"]), np.asarray(rows["y"])
    assert abs(x.std() - 1) < 0.03
    residual = y - x @ dataset.beta
    assert abs(residual.var() - 0.5) < 0.05
    np.testing.assert_allclose(np.sum(dataset.beta**2), 4.0)
    with jax.enable_x64(True):
        first = training_rows(trial_key(0), on_device, 10, 10, 0.0)
    np.testing.assert_array_equal(np.asarray(first["x"]), x[:10])


def test_fixed_splits():
    digits = load_dataset(DigitsData())
    assert digits.x_pool.shape == (1200, 64) and digits.x_test.shape == (597, 64)
    assert digits.x_pool.max() <= 1.0 and digits.n_classes == 10
    mnist = load_dataset(Mnist1dData(n_train=100, train_pool=400, n_test=600))
    assert mnist.x_pool.shape == (400, 40) and mnist.x_test.shape == (600, 40)
    assert set(np.unique(mnist.y_pool)) <= set(range(10))
    assert load_dataset(Mnist1dData(n_train=50, train_pool=400, n_test=600)) is mnist


PINNED_IDS = [  # (trial sections, id): one per dataset and model kind family
    (
        {
            "data": {"name": "gaussian", "dim": 50, "n_train": 40},
            "model": {"name": "raw_features", "n_features": 20},
            "fit": {"ridge": 0.1},
        },
        "b41024e896b07776",
    ),
    (
        {
            "data": {"name": "modular", "p": 23, "op": "x-y"},
            "model": {"name": "transformer", "width": 32, "heads": 2},
            "train": {"optimizer": "adamw", "batch_size": "full"},
        },
        "d167faf037c0b334",
    ),
    (
        {
            "data": {"name": "cifar10", "n_train": 5000, "label_noise": 0.2},
            "model": {"name": "resnet18", "width": 8},
        },
        "dd750a85050da16b",
    ),
    (
        {
            "data": {"name": "digits", "n_train": 300},
            "model": {"name": "pca_fourier_features", "n_features": 100, "pca_components": 10},
        },
        "01c00406ac00e72b",
    ),
    (
        {
            "data": {"name": "mnist1d", "n_train": 1000},
            "model": {"name": "cnn", "width": 4},
            "train": {"precision": "bf16"},
        },
        "cff8347d1c42b5da",
    ),
]


def test_trial_ids_of_built_in_kinds_are_pinned():
    """Moving a kind's config class must not move its trials' ids (stored results stay valid)."""
    from dd.plan.sweep import parse_spec
    from dd.spec.ids import trial_id

    for sections, pinned in PINNED_IDS:
        assert trial_id(parse_spec({"name": "pin", **sections}).trials[0]) == pinned, sections
