"""A user's own dataset: four arrays from an ``.npz`` file or from a Python loader, checked once.

Both sources give ``x_train``, ``y_train`` (the pool that ``n_train`` examples are drawn
from, with label noise and seeds exactly as for built-in data), ``x_test`` and ``y_test``.
Every problem a training run would otherwise meet late (a missing file, a loader that does
not import or raises, shapes that disagree, non-numeric dtypes, NaN or Inf, labels out of
range or skipping a class) is one ``DataError`` line naming the source, raised by the resolve
stage (``dd.plan.resolve``) when a spec is loaded for running; never by the config object, so
the commands that only read results neither open the file nor run the loader.

Inputs: floats become float32, integers int32 (tokens for the user's own embedding).
Targets: integer labels, or whole-valued floats, make a classification task (classes
0..n_classes-1); fractional float targets a regression task (one output); ``task`` can
state it instead. The two sources (``dd.datasets.arrays``, ``dd.datasets.python``) share
this module.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dd.datasets.base import Dataset, DatasetKind, Locations
from dd.spec.config import ClassificationData, Data, DataFacts
from dd.spec.errors import DataError, SpecError
from dd.spec.fields import Options, bounded, join, one_of
from dd.spec.ids import IDENTITY
from dd.spec.user_code import import_object, one_line

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")
TASKS = ("auto", "classification", "regression")


@dataclass(frozen=True, kw_only=True)
class UserData(ClassificationData):
    """A user's own arrays: ``x_train``, ``y_train`` (the pool), ``x_test``, ``y_test``.

    ``task`` auto makes integer (or whole-valued float) labels classification and fractional
    float targets regression. ``classes`` fixes the class count (labels must lie in
    0..classes-1); by default the labels must run 0..K-1. ``n_test`` (default: all) takes the
    first test examples. The facts (shapes, classes, sizes) come from the resolve stage,
    which reads the arrays and returns a copy that holds them (``with_facts``): a derived
    field, no part of the config's identity (nor its equality, its row columns or a spec),
    which its other fields alone decide.
    """

    n_train: int
    n_test: int | None = None
    task: str = one_of("auto", TASKS)
    classes: int | None = bounded(None, lo=2)
    facts: DataFacts | None = dataclasses.field(
        default=None, compare=False, repr=False, metadata={IDENTITY: "derived"}
    )

    def with_facts(self, facts: DataFacts) -> UserData:
        """A copy of this config that holds its facts (this one is frozen: left as it is)."""
        return dataclasses.replace(self, facts=facts)

    @property
    def CLASSIFICATION(self) -> bool:
        """Known from ``task``, else from the facts; assumed until the arrays are read."""
        facts = self.facts
        return facts.n_classes > 0 if facts is not None else self.task != "regression"

    @property
    def n_classes(self) -> int:
        return self.known_facts().n_classes

    @property
    def pool_size(self) -> int:
        return self.known_facts().pool_size

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.known_facts().input_shape

    @property
    def test_size(self) -> int:
        return self.known_facts().test_size

    @property
    def integer_inputs(self) -> bool:
        return self.known_facts().integer_inputs

    def neutral(self) -> Data:
        return dataclasses.replace(self, n_train=1, label_noise=0.0)  # the facts kept


@dataclasses.dataclass(frozen=True)
class Arrays:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    facts: DataFacts  # test_size: every test example (n_test cuts it)


def user_kind(
    config: type,
    arrays_of: Callable[[UserData], Arrays],
    tiny: Callable[[str, Path], dict[str, Any]] | None = None,
) -> DatasetKind:
    """The kind of one source of user arrays: ``arrays_of(data)`` reads and checks them;
    ``tiny``: its tiny case (``DatasetKind.tiny``)."""

    def describe(data: UserData) -> DataFacts:
        """The arrays' facts, ``n_test`` applied."""
        facts = arrays_of(data).facts
        return dataclasses.replace(facts, test_size=data.n_test or facts.test_size)

    def check(data: UserData, facts: DataFacts, path: str) -> None:
        """What only the arrays can tell: sizes against the pool and test set, the task."""
        if data.n_train > facts.pool_size:
            raise SpecError(
                join(path, "n_train"),
                f"{data.n_train} is larger than the "
                f"{facts.pool_size} examples of x_train in {facts.source}",
            )
        in_file = arrays_of(data).facts.test_size
        if data.n_test is not None and data.n_test > in_file:
            raise SpecError(
                join(path, "n_test"),
                f"{data.n_test} is larger than the {in_file} examples of x_test in {facts.source}",
            )
        if data.label_noise and not facts.n_classes:
            raise SpecError(
                join(path, "label_noise"),
                f"{facts.source} is a regression "
                "dataset (float targets); label noise needs class labels",
            )

    def load(data: UserData, locations: Locations) -> Dataset:
        arrays = arrays_of(data)
        n_test = data.n_test or len(arrays.y_test)
        return Dataset(
            arrays.x_train,
            arrays.y_train,
            arrays.x_test[:n_test],
            arrays.y_test[:n_test],
            arrays.facts.n_classes,
        )

    return DatasetKind(configs=(config,), load=load, describe=describe, check=check, tiny=tiny)


def file_arrays(path: str, task: str, classes: int | None) -> Arrays:
    """The arrays of an ``.npz`` at ``path``, converted and checked (cached per file version)."""
    file = Path(path).expanduser()
    try:
        stat = file.stat()
    except OSError as e:
        raise DataError(f"data.path: {path}: cannot read ({e.strerror or e})") from None
    return _load_file(path, task, classes, (stat.st_mtime_ns, stat.st_size))


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
def loader_arrays(source: str, options: Options, task: str, classes: int | None) -> Arrays:
    """The arrays ``source(**options)`` returns, converted and checked (cached)."""
    loader = import_object(source, "data.loader")
    try:
        out = loader(**options.as_kwargs())
    except Exception as e:  # the user's code: any failure is theirs to see, in one line
        raise DataError(f"data.loader: {source} raised {one_line(e)}") from None
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
            raise fail(f"{name} is not an array ({one_line(e)})") from None
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
    facts = DataFacts(
        source=source,
        pool_size=len(x_train),
        test_size=len(x_test),
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        n_classes=n_classes,
        integer_inputs=integer_x,
    )
    return Arrays(x_train.astype(x_type), y_train, x_test.astype(x_type), y_test, facts)
