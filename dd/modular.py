"""Modular-arithmetic datasets (Power et al. 2022): an operation over all pairs (x, y) of Z_p.

Every pair is one example with inputs ``(x, y)`` (two tokens) and the answer in Z_p as its
class. A trial trains on a seeded random fraction of the pairs and is tested on the rest
(``dd.config.ModularData``), so the pool is the whole table and there is no separate test set.
"""

from __future__ import annotations

import numpy as np


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
    raise ValueError(f"unknown operation {op!r}")  # validated in dd.config.ModularData


def table(p: int, op: str) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of the task, ``x`` major: inputs (P, 2) int32 and answers (P,) int32.

    Division (x/y) leaves out y = 0; every other task keeps all p^2 pairs.
    """
    x, y = (
        a.ravel().astype(np.int64) for a in np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    )
    if op == "x/y":
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
