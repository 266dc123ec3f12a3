"""The l2 norm of all of a replica's parameters, at every evaluation point: a metric a spec asks
for with ``train: {measures: weight_norm}``. No JAX is imported at the top: dd reads the
declaration (its column) in commands that never train."""

from __future__ import annotations

import math

import pyarrow as pa

from dd.models.measures.base import Measure, View


def compute(view: View) -> dict:
    """sqrt of the sum of every parameter squared (one number per replica)."""
    import jax
    import jax.numpy as jnp

    squares = [jnp.sum(x.astype(jnp.float32) ** 2) for x in jax.tree.leaves(view.params)]
    return {"weight_norm": jnp.sqrt(sum(squares))}


MEASURE = Measure(
    name="weight_norm",
    columns={"weight_norm": (pa.float64(), "l2 norm of all parameters (dd-moons plugin)")},
    compute=f"{__name__}:compute",
    ranges={"weight_norm": (0.0, math.inf)},
)
