"""Modular-arithmetic datasets (Power et al. 2022): an operation over all pairs (x, y) of Z_p.

Every pair is one example with inputs ``(x, y)`` (two tokens) and the answer in Z_p as its
class. A trial trains on a seeded random fraction of the pairs and is tested on the rest
(``ModularData``), so the pool is the whole table and there is no separate test set: the
engine evaluates the whole table (the kind gives no test chunks), and the kind asks for the
progress measures of ``dd.models.measures.modular``, whose Fourier arrays it puts on the
device.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dd.datasets.base import Dataset, DatasetKind, Locations
from dd.spec.config import ClassificationData, Data
from dd.spec.errors import SpecError
from dd.spec.fields import bounded, join, one_of

MODULAR_OPS = (
    "x+y",
    "x-y",
    "x/y",
    "x*y",
    "x/y_if_y_odd_else_x-y",
    "x^2+y^2",
    "x^2+xy+y^2",
    "x^2+xy+y^2+x",
    "x^3+xy",
    "x^3+xy^2+y",
)
FOURIER_OPS = ("x+y", "x-y")  # tasks whose answer is a function of x +- y
NONZERO_Y_OPS = ("x/y", "x*y")  # tasks over 0 <= x < p, 0 < y < p (Grokfast's x*y too)


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


@dataclass(frozen=True, kw_only=True)
class ModularData(ClassificationData):
    """The algorithmic tasks of Power et al.: ``op`` over all pairs (x, y) of Z_p.

    A trial trains on ``train_fraction`` of the pairs (``n_train`` = round(fraction x pairs),
    drawn from its seed) and is tested on every other pair (``n_test``). Division and x*y
    (Grokfast's task) leave out y = 0. ``label_noise`` gives a training pair a random other
    answer (Doshi et al.'s corruption). ``key_share``: the key frequencies of the embedding
    are the fewest that hold this share of its squared Fourier norm
    (``dd.models.measures.mechanistic``).
    """

    name: str = "modular"
    p: int = 97
    op: str = one_of("x+y", MODULAR_OPS)
    train_fraction: float = 0.3
    key_share: float = bounded(0.9, lo=0, lo_open=True, hi=1.0)
    n_train: int = dataclasses.field(init=False, default=0)
    n_test: int = dataclasses.field(init=False, default=0)

    MEASURES: ClassVar[tuple[str, ...]] = ("fourier", "grad_symmetricity")
    SUM_MEASURES: ClassVar[tuple[str, ...]] = ("restricted_excluded", "distance_irrelevance")

    def __post_init__(self) -> None:
        n_train = round(self.train_fraction * self.pool_size)
        object.__setattr__(self, "n_train", n_train)
        object.__setattr__(self, "n_test", self.pool_size - n_train)

    @property
    def pool_size(self) -> int:
        return self.p * (self.p - 1) if self.op in NONZERO_Y_OPS else self.p * self.p

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (2,)  # the tokens x and y

    @property
    def n_classes(self) -> int:
        return self.p

    @property
    def integer_inputs(self) -> bool:
        return True

    @property
    def vocab(self) -> int:
        return self.p

    def measures(self) -> tuple[str, ...]:
        """The progress measures; those of the sum's directions for x+y and x-y only."""
        return self.MEASURES + (self.SUM_MEASURES if self.op in FOURIER_OPS else ())

    def neutral(self) -> Data:
        return dataclasses.replace(self, train_fraction=0.5, label_noise=0.0)

    def check(self, path: str) -> None:
        if not _is_prime(self.p) or self.p < 3 or self.p > 2003:
            raise SpecError(join(path, "p"), f"must be an odd prime <= 2003 (got {self.p})")
        if not 0 < self.train_fraction < 1 or not 1 <= self.n_train < self.pool_size:
            raise SpecError(
                join(path, "train_fraction"),
                f"must leave at least one of the {self.pool_size} pairs for training "
                f"and one for test (got {self.train_fraction})",
            )
        super().check(path)


def _inverse(y: np.ndarray, p: int) -> np.ndarray:
    """y^(p-2) mod p, the inverse of y != 0 in Z_p (p prime), elementwise."""
    out = np.ones_like(y)
    base, e = y % p, p - 2
    while e:
        if e & 1:
            out = out * base % p
        base = base * base % p
        e >>= 1
    return out


def _answers(op: str, x: np.ndarray, y: np.ndarray, p: int) -> np.ndarray:
    if op == "x+y":
        return x + y
    if op == "x-y":
        return x - y
    if op == "x/y":
        return x * _inverse(y, p)
    if op == "x*y":
        return x * y
    if op == "x/y_if_y_odd_else_x-y":
        return np.where(y % 2 == 1, x * _inverse(y, p), x - y)
    if op == "x^2+y^2":
        return x * x + y * y
    if op == "x^2+xy+y^2":
        return x * x + x * y + y * y
    if op == "x^2+xy+y^2+x":
        return x * x + x * y + y * y + x
    if op == "x^3+xy":
        return x * x * x + x * y
    if op == "x^3+xy^2+y":
        return x * x * x + x * y * y + y
    raise ValueError(f"unknown operation {op!r}")  # validated by ModularData


def table(p: int, op: str) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of the task, ``x`` major: inputs (P, 2) int32 and answers (P,) int32.

    Division (x/y) leaves out y = 0, and so does x*y, as Lee et al.'s Grokfast task does
    (github ironjr/grokfast, ``multiplication_mod_p_data``); every other task keeps all p^2
    pairs.
    """
    x, y = (
        a.ravel().astype(np.int64) for a in np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    )
    if op in NONZERO_Y_OPS:
        keep = y != 0
        x, y = x[keep], y[keep]
    answers = _answers(op, x, y, p) % p
    return np.stack([x, y], axis=1).astype(np.int32), answers.astype(np.int32)


def fourier_basis(p: int) -> np.ndarray:
    """The real Fourier basis of functions on Z_p, as rows (p, p), orthonormal (p odd).

    Row 0 is the constant 1/sqrt(p); rows 2k-1 and 2k are cos(2 pi k x / p) and
    sin(2 pi k x / p) for k = 1..(p-1)/2, each scaled to unit norm (Nanda et al.).
    """
    x = np.arange(p)
    rows = [np.ones(p)]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [np.cos(2 * np.pi * k * x / p), np.sin(2 * np.pi * k * x / p)]
    basis = np.stack(rows)
    return basis / np.linalg.norm(basis, axis=1, keepdims=True)


def sum_directions(pairs: np.ndarray, p: int, op: str) -> np.ndarray:
    """Unit columns cos(w_k s), sin(w_k s) over the pairs, k = 1..(p-1)/2: (P, p - 1)."""
    s = (pairs[:, 0] + (1 if op == "x+y" else -1) * pairs[:, 1]) % p
    k = np.arange(1, (p - 1) // 2 + 1)
    angle = 2 * np.pi * np.outer(s, k) / p
    cols = np.stack([np.cos(angle), np.sin(angle)], axis=2).reshape(len(s), -1)
    return (cols / np.linalg.norm(cols, axis=0)).astype(np.float32)


def load(data: ModularData, locations: Locations) -> Dataset:
    pairs, answers = table(data.p, data.op)  # a trial tests on the pairs it does not train on
    return Dataset(pairs, answers, pairs, answers, data.p)


def device_arrays(dataset: Dataset, data: ModularData) -> dict[str, Any]:
    """The Fourier basis (and, for x +- y, the directions of the sum) the progress measures
    read; no test chunks: the whole table is evaluated from the pool."""
    out = {
        "fourier_basis_FP": fourier_basis(data.p).astype(np.float32),
        "x_test_CTD": None,
        "y_test_CT": None,
        "mask_test_CT": None,
    }
    if data.op in FOURIER_OPS:
        out["sum_directions_PF"] = sum_directions(dataset.x_pool, data.p, data.op)
    return out


def pool_floats(data: ModularData) -> int:
    """An evaluation holds the whole table's logits (and their gradients' share)."""
    return 3 * data.pool_size * data.vocab


KIND = DatasetKind(
    configs=(ModularData,),
    load=load,
    device_arrays=device_arrays,
    eval_floats=pool_floats,
    tiny=lambda name, folder: {"name": name, "p": 7, "train_fraction": 0.5},
)
