"""Numerical precision of a training program: ``train.precision``.

- ``float32``: float32 everywhere, matrix products and convolutions at full float32
  precision on every platform (XLA's default on Ampere/Hopper GPUs would silently use TF32),
  so CPU and GPU results compare.
- ``tf32``: float32 storage, matrix products and convolutions on tensor-float-32 units
  (10-bit mantissa inputs, float32 accumulation); on a CPU this is float32.
- ``bf16``: activations and matrix inputs in bfloat16; parameters, optimizer state,
  BatchNorm statistics, logits and the loss stay float32 (mixed precision).
- ``float64``: data, parameters, optimizer state, activations, logits and the loss in
  float64 (Prieto et al. 2025 delay softmax collapse with float64 cross-entropy). JAX's
  ``x64`` mode is a per-thread setting: ``x64`` scopes it to one pack's work (its programs
  are traced and run inside it; JAX's compile caches key on it, and dd's ``Program`` holds
  the precision), so float32 packs before or after it in the same worker are unaffected.
  The initial parameters are the float32 trial's draws, widened (the same starting point).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

_MATMUL = {
    "float32": "float32",
    "tf32": "tensorfloat32",
    "bf16": "bfloat16",
    "float64": "highest",
}


def compute_dtype(precision: str) -> jnp.dtype:
    """The dtype a network computes its activations in."""
    return {"bf16": jnp.bfloat16, "float64": jnp.float64}.get(precision, jnp.float32)


def floating() -> np.dtype:
    """The float dtype of the program being traced: float64 inside a float64 pack's ``x64``
    scope, float32 everywhere else (where the engine would otherwise say float32)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def host_floating(precision: str) -> type:
    """The numpy float type of a pack's per-replica values (learning rates, decays)."""
    return np.float64 if precision == "float64" else np.float32


@contextlib.contextmanager
def x64(precision: str) -> Iterator[None]:
    """JAX's 64-bit mode on for a float64 pack and off for every other (whatever the
    process's default), for this thread only."""
    with jax.enable_x64(precision == "float64"):
        yield


def widened(precision: str, tree):
    """A float64 pack's float leaves (initial parameters, statistics) as float64."""
    if precision != "float64":
        return tree
    return jax.tree.map(
        lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree
    )


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """Trace the enclosed code with the matrix-product precision of ``precision``.

    JAX reads the setting when an operation is traced, so a jitted function that enters
    this context in its body compiles with it, whatever the caller's global setting.
    """
    with jax.default_matmul_precision(_MATMUL[precision]):
        yield
