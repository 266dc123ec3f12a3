"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 from local files (``dd.datasets.image_files``)."""

from __future__ import annotations

import dataclasses
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from dd.datasets.base import Dataset, DatasetKind, Locations
from dd.datasets.image_files import load_images
from dd.spec.config import ClassificationData
from dd.spec.errors import DataError, SpecError
from dd.spec.fields import join

IMAGE_SHAPES = {  # name: (train pool, test set, (H, W, C)) of the published files
    "mnist": (60000, 10000, (28, 28, 1)),
    "fashion_mnist": (60000, 10000, (28, 28, 1)),
    "cifar10": (50000, 10000, (32, 32, 3)),
    "cifar100": (50000, 10000, (32, 32, 3)),
}


@dataclass(frozen=True, kw_only=True)
class ImageData(ClassificationData):
    """MNIST, Fashion-MNIST, CIFAR-10 or CIFAR-100 from local files (see ``dd.datasets.images``).

    ``data_dir`` (else the settings' ``data_dir``, $DD_DATA_DIR) holds the files in their
    published formats (a location, not part of trial ids: ``dd.spec.ids``); ``augment`` turns on
    random crops (padding 4) and horizontal flips during training.
    """

    n_train: int = 50000
    n_test: int = 10000
    data_dir: str | None = dataclasses.field(default=None, metadata={"identity": "location"})
    augment: bool = False

    NAMES: ClassVar[tuple[str, ...]] = tuple(IMAGE_SHAPES)

    @property
    def pool_size(self) -> int:
        return IMAGE_SHAPES[self.name][0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return IMAGE_SHAPES[self.name][2]

    @property
    def n_classes(self) -> int:
        return 100 if self.name == "cifar100" else 10

    def check(self, path: str) -> None:
        super().check(path)
        if self.n_test > IMAGE_SHAPES[self.name][1]:
            raise SpecError(
                join(path, "n_test"),
                f"{self.n_test} is larger than the "
                f"{IMAGE_SHAPES[self.name][1]} test images of {self.name}",
            )


def load(data: ImageData, locations: Locations) -> Dataset:
    """The uint8 pool with its per-channel statistics, and the first ``n_test`` test images,
    from the spec's ``data_dir``, else ``locations.data_dir``. Raises DataError when the files
    hold fewer test images than the config asks for."""
    loaded = load_images(data.name, data.data_dir or locations.data_dir)
    if len(loaded["y_test"]) < data.n_test:
        raise DataError(
            f"{data.name}: n_test = {data.n_test} but the test files hold "
            f"{len(loaded['y_test'])} examples"
        )
    x_pool = loaded["x_train"]
    scaled = x_pool.reshape(-1, x_pool.shape[-1]) / 255.0
    return Dataset(
        x_pool,
        loaded["y_train"],
        loaded["x_test"][: data.n_test],
        loaded["y_test"][: data.n_test],
        loaded["n_classes"],
        x_mean=scaled.mean(0).astype(np.float32),
        x_std=scaled.std(0).astype(np.float32),
    )


def tiny(name: str, folder: Path) -> dict:
    """Fabricated files of ``name`` in its published format under ``folder`` (30 random
    training and 20 test images; CIFAR-10: 2 per training batch), and a config reading them."""
    rng = np.random.default_rng(0)
    n_train = 10 if name == "cifar10" else 30
    if name in ("mnist", "fashion_mnist"):
        directory = Path(folder) / name
        directory.mkdir(parents=True, exist_ok=True)
        for prefix, n in (("train", 30), ("t10k", 20)):
            images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, n, dtype=np.uint8)
            for suffix, magic, array in (
                ("images-idx3", 0x803, images),
                ("labels-idx1", 0x801, labels),
            ):
                header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
                (directory / f"{prefix}-{suffix}-ubyte").write_bytes(header + array.tobytes())
    else:
        classes, labels_key = (10, b"labels") if name == "cifar10" else (100, b"fine_labels")
        names = [f"data_batch_{i}" for i in range(1, 6)] if name == "cifar10" else ["train"]
        directory = Path(folder) / (
            "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
        )
        directory.mkdir(parents=True, exist_ok=True)
        test = "test_batch" if name == "cifar10" else "test"
        for file, n in [*((f, n_train // len(names)) for f in names), (test, 20)]:
            batch = {
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                labels_key: rng.integers(0, classes, n).tolist(),
            }
            (directory / file).write_bytes(pickle.dumps(batch, protocol=4))
    return {"name": name, "data_dir": str(folder), "n_train": min(n_train, 20), "n_test": 20}


KIND = DatasetKind(configs=(ImageData,), load=load, checks_files=True, tiny=tiny)
