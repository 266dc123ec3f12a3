"""A user's own dataset: four arrays from an ``.npz`` file or from a Python loader, checked once.

Both sources give ``x_train``, ``y_train`` (the pool that ``n_train`` examples are drawn
from, with label noise and seeds exactly as for built-in data), ``x_test`` and ``y_test``.
Every problem a training run would otherwise meet late (a missing file, a loader that does
not import or raises, shapes that disagree, non-numeric dtypes, NaN or Inf, labels out of
range) is one ``DataError`` line naming the source, raised when the spec is loaded.

Inputs: floats become float32, integers int32 (tokens for the user's own embedding).
Targets: integer labels make a classification task (classes 0..n_classes-1), float targets
a regression task (one output); ``task`` can state it instead.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np

from dd.config import ArraysData, Options, UserData
from dd.errors import DataError

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")


@dataclasses.dataclass(frozen=True)
class Summary:
    """What the configs and the engine need to know of a user's arrays."""

    source: str  # the file or loader, for messages
    pool_size: int
    test_size: int
    input_shape: tuple[int, ...]
    n_classes: int  # 0: regression
    integer_inputs: bool


@dataclasses.dataclass(frozen=True)
class Arrays:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    summary: Summary


def summary(data: UserData) -> Summary:
    """The checked summary of ``data``'s arrays (loaded once per process and file version)."""
    return load(data).summary


def load(data: UserData) -> Arrays:
    """``data``'s arrays, converted and checked; a DataError names the first problem.
    (They depend on the source, ``task`` and ``classes`` only, not on n_train or n_test.)"""
    if isinstance(data, ArraysData):
        path = Path(data.path).expanduser()
        try:
            stat = path.stat()
        except OSError as e:
            raise DataError(f"data.path: {data.path}: cannot read ({e.strerror or e})") from None
        return _load_file(data.path, data.task, data.classes, (stat.st_mtime_ns, stat.st_size))
    return _load_python(data.loader, data.options, data.task, data.classes)


@functools.lru_cache(maxsize=8)
def _load_file(source: str, task: str, classes: int | None, version: tuple[int, int]) -> Arrays:
    try:
        with np.load(Path(source).expanduser(), allow_pickle=False) as f:
            missing = [k for k in ARRAY_NAMES if k not in f.files]
            if missing:
                raise DataError(
                    f"data.path: {source}: no array {missing[0]!r}; an .npz needs "
                    f"{', '.join(ARRAY_NAMES)} (it has {', '.join(f.files) or 'none'})"
                )
            raw = {k: f[k] for k in ARRAY_NAMES}
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as e:  # not a zip, truncated, object arrays
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"data.path: {source}: not a readable .npz file ({reason})") from None
    return _checked(raw, "data.path", source, task, classes)


@functools.lru_cache(maxsize=8)
def _load_python(source: str, options: Options, task: str, classes: int | None) -> Arrays:
    from dd.user_model import resolve

    loader = resolve(source, "data.loader")
    try:
        out = loader(**options.as_kwargs())
    except Exception as e:  # the user's code: any failure is theirs to see, in one line
        raise DataError(f"data.loader: {source} raised {_one_line(e)}") from None
    if isinstance(out, dict):
        missing = [k for k in ARRAY_NAMES if k not in out]
        if missing:
            raise DataError(
                f"data.loader: {source} returned no {missing[0]!r}; return a "
                f"mapping with {', '.join(ARRAY_NAMES)}"
            )
        raw = {k: out[k] for k in ARRAY_NAMES}
    elif isinstance(out, (tuple, list)) and len(out) == 4:
        raw = dict(zip(ARRAY_NAMES, out, strict=True))
    else:
        raise DataError(
            f"data.loader: {source} returned {type(out).__name__}; return a mapping "
            f"with {', '.join(ARRAY_NAMES)} or those four arrays in a tuple"
        )
    return _checked(raw, "data.loader", source, task, classes)


def _classes(y: np.ndarray, classes: int | None, fail: Any) -> int:
    """The class count: ``classes``, else the labels must be exactly 0..K-1 (a label set
    that starts at 1 or skips a class would silently add classes no example has)."""
    low, high = int(y.min()), int(y.max())
    n_classes = classes or high + 1
    if low < 0 or high >= n_classes:
        raise fail(f"labels must lie in 0..{n_classes - 1}, found {low}..{high}")
    if n_classes < 2:
        raise fail("classification needs at least 2 classes; every label is 0")
    missing = np.setdiff1d(np.arange(n_classes), y)
    if classes is None and len(missing):
        shown = ", ".join(str(c) for c in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise fail(
            f"labels run {low}..{high} but class{'es' if len(missing) > 1 else ''} {shown} "
            f"{'are' if len(missing) > 1 else 'is'} missing; labels must be 0..K-1 "
            "(or set data.classes when some classes have no example)"
        )
    return n_classes


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _checked(
    raw: dict[str, Any], where: str, source: str, task: str, classes: int | None
) -> Arrays:
    def fail(message: str) -> DataError:
        return DataError(f"{where}: {source}: {message}")

    arrays = {}
    for name, value in raw.items():
        try:
            array = np.asarray(value)
        except Exception as e:
            raise fail(f"{name} is not an array ({_one_line(e)})") from None
        if array.dtype.kind not in "biuf":
            raise fail(f"{name} has dtype {array.dtype}; give numbers (bool, int or float)")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise fail(f"{name} holds NaN or Inf values")
        arrays[name] = array
    x_train, y_train, x_test, y_test = (arrays[k] for k in ARRAY_NAMES)
    if x_train.ndim < 2 or len(x_train) == 0:
        raise fail(
            f"x_train must have shape (examples, ...) with at least one example "
            f"(got {x_train.shape})"
        )
    if x_test.shape[1:] != x_train.shape[1:]:
        raise fail(
            f"x_test examples have shape {x_test.shape[1:]} but x_train's have {x_train.shape[1:]}"
        )
    if len(x_test) == 0:
        raise fail("x_test holds no examples")
    for x_name, y_name in (("x_train", "y_train"), ("x_test", "y_test")):
        x, y = arrays[x_name], arrays[y_name]
        if y.ndim != 1 or len(y) != len(x):
            raise fail(
                f"{y_name} must have shape ({len(x)},), one target per example of "
                f"{x_name} (got {y.shape})"
            )
    y_all = np.concatenate([y_train, y_test])
    whole = y_all.dtype.kind in "biu" or bool(np.all(y_all == np.round(y_all)))
    if task == "auto":  # whole-valued floats (labels saved as 0.0..9.0) are class labels too
        task = "classification" if whole else "regression"
    if task == "classification":
        if not whole:
            raise fail(
                "task classification needs integer labels; y_train or y_test "
                "holds fractional values"
            )
        n_classes = _classes(y_all.astype(np.int64), classes, fail)
        y_train, y_test = y_train.astype(np.int32), y_test.astype(np.int32)
    else:
        if classes is not None:
            raise fail("classes is set but the targets are a regression task")
        n_classes = 0
        y_train, y_test = y_train.astype(np.float32), y_test.astype(np.float32)
    integer_x = x_train.dtype.kind in "biu" and x_test.dtype.kind in "biu"
    x_type = np.int32 if integer_x else np.float32
    summary_ = Summary(
        source=source,
        pool_size=len(x_train),
        test_size=len(x_test),
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        n_classes=n_classes,
        integer_inputs=integer_x,
    )
    return Arrays(x_train.astype(x_type), y_train, x_test.astype(x_type), y_test, summary_)
