"""Numerical precision of a training program: ``train.precision``.

- ``float32``: float32 everywhere, matrix products and convolutions at full float32
  precision on every platform (XLA's default on Ampere/Hopper GPUs would silently use TF32),
  so CPU and GPU results compare.
- ``tf32``: float32 storage, matrix products and convolutions on tensor-float-32 units
  (10-bit mantissa inputs, float32 accumulation); on a CPU this is float32.
- ``bf16``: activations and matrix inputs in bfloat16; parameters, optimizer state,
  BatchNorm statistics, logits and the loss stay float32 (mixed precision).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax
import jax.numpy as jnp

_MATMUL = {"float32": "float32", "tf32": "tensorfloat32", "bf16": "bfloat16"}


def compute_dtype(precision: str) -> jnp.dtype:
    """The dtype a network computes its activations in."""
    return jnp.bfloat16 if precision == "bf16" else jnp.float32


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """Trace the enclosed code with the matrix-product precision of ``precision``.

    JAX reads the setting when an operation is traced, so a jitted function that enters
    this context in its body compiles with it, whatever the caller's global setting.
    """
    with jax.default_matmul_precision(_MATMUL[precision]):
        yield
