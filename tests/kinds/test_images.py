"""The image readers against tiny files fabricated in the published formats."""

import gzip
import os

import numpy as np
import pytest

from dd.datasets import images as image_kind
from dd.datasets.base import Locations
from dd.datasets.image_files import load_images
from dd.datasets.images import ImageData
from dd.spec.errors import DataError
from helpers import (
    cifar_batch,
    idx_split,
    write_cifar10,
    write_idx,
    write_idx_dataset,
    write_pickle,
)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_round_trip(tmp_path, name, gz):
    splits = {"train": idx_split(5), "t10k": idx_split(3)}
    write_idx_dataset(tmp_path / name, splits, gz=gz)
    loaded = load_images(name, str(tmp_path))
    for prefix, split in (("train", "train"), ("t10k", "test")):
        images, labels = splits[prefix]
        np.testing.assert_array_equal(loaded[f"x_{split}"], images[..., None])
        np.testing.assert_array_equal(loaded[f"y_{split}"], labels)
        assert loaded[f"x_{split}"].dtype == np.uint8 and loaded[f"y_{split}"].dtype == np.int32
    assert loaded["n_classes"] == 10


def test_cifar10_round_trip_transposes_channel_major_rows_to_nhwc(tmp_path):
    batches = {
        name: cifar_batch(2, 10)
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    }
    # Channel 1 (green), row 2, column 3 of the first training image.
    batches["data_batch_1"][b"data"][0, 1 * 1024 + 2 * 32 + 3] = 7
    write_cifar10(tmp_path, batches)
    loaded = load_images("cifar10", str(tmp_path))
    assert loaded["x_train"].shape == (10, 32, 32, 3) and loaded["x_test"].shape == (2, 32, 32, 3)
    assert loaded["x_train"][0, 2, 3, 1] == 7
    train_rows = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    for n, h, w, c in [(0, 0, 0, 0), (3, 31, 0, 2), (9, 5, 17, 1)]:
        assert loaded["x_train"][n, h, w, c] == train_rows[n, c * 1024 + h * 32 + w]
    np.testing.assert_array_equal(
        loaded["y_train"], sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    )
    np.testing.assert_array_equal(loaded["y_test"], batches["test_batch"][b"labels"])
    assert loaded["y_train"].dtype == np.int32 and loaded["n_classes"] == 10


def test_cifar100_reads_fine_labels(tmp_path):
    train = {**cifar_batch(4, 100, b"fine_labels"), b"coarse_labels": [0, 1, 2, 3]}
    train[b"fine_labels"] = [0, 99, 42, 7]
    write_pickle(tmp_path / "cifar-100-python" / "train", train)
    write_pickle(tmp_path / "cifar-100-python" / "test", cifar_batch(2, 100, b"fine_labels"))
    loaded = load_images("cifar100", str(tmp_path))
    np.testing.assert_array_equal(loaded["y_train"], [0, 99, 42, 7])
    assert loaded["x_train"].shape == (4, 32, 32, 3) and loaded["n_classes"] == 100


def test_data_dir_from_the_settings(tmp_path):
    write_idx_dataset(tmp_path / "mnist", {"train": idx_split(2), "t10k": idx_split(1)})
    data = ImageData(name="mnist", n_train=2, n_test=1)
    assert len(image_kind.load(data, Locations(data_dir=str(tmp_path))).y_pool) == 2


def test_the_specs_data_dir_wins_over_the_settings(tmp_path):
    write_idx_dataset(tmp_path / "mnist", {"train": idx_split(2), "t10k": idx_split(1)})
    data = ImageData(name="mnist", n_train=2, n_test=1, data_dir=str(tmp_path))
    elsewhere = Locations(data_dir=str(tmp_path / "elsewhere"))
    assert len(image_kind.load(data, elsewhere).y_pool) == 2


def test_no_data_dir_says_how_to_set_one(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "mnist", {"train": idx_split(2), "t10k": idx_split(1)})
    monkeypatch.setenv("DD_DATA_DIR", str(tmp_path))  # read by Settings only, not here
    with pytest.raises(DataError, match="DD_DATA_DIR"):
        load_images("mnist", None)


def test_unknown_dataset_lists_the_allowed_names(tmp_path):
    with pytest.raises(DataError, match="mnist, fashion_mnist, cifar10, cifar100"):
        load_images("imagenet", str(tmp_path))


def break_missing_file(directory):
    (directory / "train-labels-idx1-ubyte").unlink()
    return directory / "train-labels-idx1-ubyte", "missing"


def break_magic(directory):
    path = directory / "train-images-idx3-ubyte"
    write_idx(path, 0x801, (2, 4, 4), np.zeros(32))
    return path, "magic 0x00000803 expected, got 0x00000801"


def break_gzipped_without_suffix(directory):
    path = directory / "t10k-images-idx3-ubyte"
    path.write_bytes(gzip.compress(path.read_bytes()))
    return path, "magic 0x00000803 expected, got 0x1f8b08"


def break_truncated(directory):
    path = directory / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    return path, "need 16 data bytes, file has 15"


def break_count_mismatch(directory):
    path = directory / "train-labels-idx1-ubyte"
    write_idx(path, 0x801, (3,), np.zeros(3))
    return path, "3 labels for 2 images"


def break_label_range(directory):
    path = directory / "t10k-labels-idx1-ubyte"
    write_idx(path, 0x801, (1,), [10])
    return path, r"0\.\.9"


@pytest.mark.parametrize(
    "break_file",
    [
        break_missing_file,
        break_magic,
        break_gzipped_without_suffix,
        break_truncated,
        break_count_mismatch,
        break_label_range,
    ],
)
def test_malformed_idx_is_a_data_error_naming_the_path(tmp_path, break_file):
    directory = tmp_path / "mnist"
    write_idx_dataset(directory, {"train": idx_split(2), "t10k": idx_split(1)})
    path, reason = break_file(directory)
    with pytest.raises(DataError, match=reason) as raised:
        load_images("mnist", str(tmp_path))
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_truncated_gzip_is_a_data_error(tmp_path):
    directory = tmp_path / "mnist"
    write_idx_dataset(directory, {"train": idx_split(2), "t10k": idx_split(1)}, gz=True)
    path = directory / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="unreadable") as raised:
        load_images("mnist", str(tmp_path))
    assert str(path) in str(raised.value)


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize(
    "batch, reason",
    [
        ({b"data": np.zeros((2, 3, 32, 32), np.uint8), b"labels": [0, 1]}, r"shape \(N, 3072\)"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "must be 2 integers"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"0\.\.9"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "b'labels'"),
        ([1, 2], "a dict with"),
    ],
    ids=["data-4d", "data-float", "labels-short", "labels-range", "labels-missing", "not-a-dict"],
)
def test_malformed_cifar_is_a_data_error_naming_the_path(tmp_path, batch, reason):
    write_cifar10(tmp_path, {"data_batch_3": batch})
    with pytest.raises(DataError, match=reason) as raised:
        load_images("cifar10", str(tmp_path))
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_3") in str(raised.value)


def test_missing_cifar_file_is_a_data_error(tmp_path):
    write_cifar10(tmp_path, {})
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch: missing"):
        load_images("cifar10", str(tmp_path))


def test_pickle_calling_a_forbidden_global_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "executed"
    write_cifar10(tmp_path, {"test_batch": {b"data": RunsACommand(marker), b"labels": [0]}})
    with pytest.raises(DataError, match=r"refuses global \w+\.system") as raised:
        load_images("cifar10", str(tmp_path))
    assert str(tmp_path / "cifar-10-batches-py" / "test_batch") in str(raised.value)
    assert not marker.exists()
