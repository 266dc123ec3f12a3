"""Readers for the image datasets, from local files in their published formats; never downloads.

Sweeps must run offline on any worker, so the data is fetched once by hand and read from disk.
The data directory is the spec's ``data_dir`` if given, else the settings' ``data_dir``
(``$DD_DATA_DIR``, read on the driver: ``dd.spec.settings``); under it:

    mnist/, fashion_mnist/   train-images-idx3-ubyte, train-labels-idx1-ubyte,
                             t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each plain or .gz)
    cifar-10-batches-py/     data_batch_1 ... data_batch_5, test_batch  (the "python version")
    cifar-100-python/        train, test                                (fine labels are used)

The IDX files lie directly in ``mnist/`` and ``fashion_mnist/``; the CIFAR directories are the
published archives unpacked as they are.

Every dataset comes back as uint8 images in NHWC layout (MNIST with C=1), int32 labels.
"""

import functools
import gzip
import math
import pickle
import struct
from pathlib import Path

import numpy as np

from dd.spec.errors import DataError

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dims: count, rows, columns
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dim: count
IDX_FORMAT = "MNIST IDX file, plain or gzipped"
CIFAR_FORMAT = "CIFAR python pickle"
CIFAR_SIDE = 32
CIFAR_CHANNELS = 3

# numpy's array-rebuilding function, taken from an array's own pickle recipe so that no
# private numpy module has to be imported by name.
_reconstruct_ndarray = np.empty(0).__reduce__()[0]

# The only globals the published CIFAR pickles name: what numpy needs to rebuild an array.
_CIFAR_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_ndarray,  # numpy 1.x, as published
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_ndarray,  # numpy 2.x
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


def resolve_data_dir(data_dir: str | None) -> Path:
    """The folder the caller chose (the spec's, else the settings'); none is a DataError that
    says how to give one."""
    if not data_dir:
        raise DataError(
            "no data directory: set data_dir in the spec or the DD_DATA_DIR environment variable"
        )
    return Path(data_dir).expanduser()


def _missing(path: Path, expected_format: str) -> DataError:
    return DataError(f"{path}: missing ({expected_format} expected)")


def _checked_labels(labels: np.ndarray, n_classes: int, path: Path) -> np.ndarray:
    """Labels outside 0..n_classes-1 would silently corrupt the one-hot targets downstream."""
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(
            f"{path}: labels must lie in 0..{n_classes - 1}, found {labels.min()}..{labels.max()}"
        )
    return labels.astype(np.int32)


def _idx_file(directory: Path, name: str) -> Path:
    """The plain file if present, else its gzipped form, as both are published."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise _missing(directory / f"{name}[.gz]", IDX_FORMAT)


def _read_idx(path: Path, magic: int, kind: str) -> np.ndarray:
    """Parses an IDX file of unsigned bytes; the header's dims must account for every byte."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: unreadable ({IDX_FORMAT} expected): {error}") from None
    header_size = 4 + 4 * (magic & 0xFF)
    if len(raw) < header_size:
        raise DataError(f"{path}: {len(raw)} bytes, too short for an IDX {kind} header")
    found_magic, *dims = struct.unpack(f">{header_size // 4}I", raw[:header_size])
    if found_magic != magic:
        raise DataError(
            f"{path}: not an IDX {kind} file (magic 0x{magic:08x} expected, "
            f"got 0x{found_magic:08x})"
        )
    data_size = len(raw) - header_size
    if data_size != math.prod(dims):
        raise DataError(
            f"{path}: IDX header dims {tuple(dims)} need {math.prod(dims)} data bytes, "
            f"file has {data_size}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def _read_idx_split(directory: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """One split (``train`` or ``t10k``): images as N,H,W,1 and their labels."""
    images_path = _idx_file(directory, f"{prefix}-images-idx3-ubyte")
    labels_path = _idx_file(directory, f"{prefix}-labels-idx1-ubyte")
    images = _read_idx(images_path, IDX_IMAGES_MAGIC, "image")
    labels = _read_idx(labels_path, IDX_LABELS_MAGIC, "label")
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}"
        )
    return images[..., np.newaxis], _checked_labels(labels, 10, labels_path)


def _load_idx_dataset(directory: Path) -> dict:
    """MNIST and Fashion-MNIST share file names and format, so one reader serves both."""
    x_train, y_train = _read_idx_split(directory, "train")
    x_test, y_test = _read_idx_split(directory, "t10k")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{directory}: train images are {x_train.shape[1:3]}, test images {x_test.shape[1:3]}"
        )
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "n_classes": 10,
    }


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and refuses every other global, so a crafted file cannot run code."""

    def find_class(self, module: str, name: str):
        try:
            return _CIFAR_PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refuses global {module}.{name}") from None


def _read_cifar_batch(
    path: Path, labels_key: bytes, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """One batch: ``b'data'`` as (N, 3072) uint8 rows, each channel-major, and N labels."""
    if not path.is_file():
        raise _missing(path, CIFAR_FORMAT)
    try:
        with path.open("rb") as file:
            batch = _ArrayOnlyUnpickler(file, encoding="bytes").load()
    except Exception as error:  # whatever an untrusted file makes the unpickler raise
        raise DataError(f"{path}: not a {CIFAR_FORMAT} ({type(error).__name__}: {error})") from None
    if not isinstance(batch, dict) or b"data" not in batch or labels_key not in batch:
        raise DataError(
            f"{path}: not a {CIFAR_FORMAT} (a dict with b'data' and {labels_key!r} expected)"
        )
    data = batch[b"data"]
    row_size = CIFAR_CHANNELS * CIFAR_SIDE * CIFAR_SIDE
    if not (
        isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.shape[1:] == (row_size,)
    ):
        found = (
            f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        )
        raise DataError(
            f"{path}: b'data' must be a uint8 array of shape (N, {row_size}), got {found}"
        )
    labels_error = DataError(f"{path}: {labels_key!r} must be {len(data)} integers, one per image")
    try:
        labels = np.asarray(batch[labels_key])
    except ValueError:  # a ragged list
        raise labels_error from None
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise labels_error
    return data, _checked_labels(labels, n_classes, path)


def _read_cifar_split(directory: Path, batch_names: list[str], labels_key: bytes, n_classes: int):
    """Concatenates the batch files, then turns the channel-major rows into NHWC images."""
    batches = [_read_cifar_batch(directory / name, labels_key, n_classes) for name in batch_names]
    rows = np.concatenate([data for data, _ in batches])
    images = rows.reshape(-1, CIFAR_CHANNELS, CIFAR_SIDE, CIFAR_SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.concatenate([labels for _, labels in batches])


def _load_cifar_dataset(
    directory: Path, *, train: list[str], test: list[str], labels_key: bytes, n_classes: int
) -> dict:
    x_train, y_train = _read_cifar_split(directory, train, labels_key, n_classes)
    x_test, y_test = _read_cifar_split(directory, test, labels_key, n_classes)
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "n_classes": n_classes,
    }


_DATASETS = {
    "mnist": ("mnist", _load_idx_dataset),
    "fashion_mnist": ("fashion_mnist", _load_idx_dataset),
    "cifar10": (
        "cifar-10-batches-py",
        functools.partial(
            _load_cifar_dataset,
            train=[f"data_batch_{i}" for i in range(1, 6)],
            test=["test_batch"],
            labels_key=b"labels",
            n_classes=10,
        ),
    ),
    "cifar100": (
        "cifar-100-python",
        functools.partial(
            _load_cifar_dataset,
            train=["train"],
            test=["test"],
            labels_key=b"fine_labels",
            n_classes=100,
        ),
    ),
}


def load_images(name: str, data_dir: str | None) -> dict:
    """Loads ``name`` as ``x_train``, ``y_train``, ``x_test``, ``y_test`` and ``n_classes``.

    Images are uint8 NHWC, labels int32 in 0..n_classes-1; ``data_dir`` is the folder of
    the files (the module docstring's layout).
    """
    if name not in _DATASETS:
        raise DataError(f"unknown image dataset {name!r}; allowed: {', '.join(_DATASETS)}")
    subdirectory, load = _DATASETS[name]
    return load(resolve_data_dir(data_dir) / subdirectory)
