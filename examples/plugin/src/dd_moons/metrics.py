"""The largest absolute parameter of a replica, at every evaluation point: a metric a spec asks
for with ``train: {measures: max_weight}`` (dd's own ``param_norm`` is the l2 norm; this is
the l-infinity one). No JAX is imported at the top: dd reads the declaration (its column) in
commands that never train."""

from __future__ import annotations

import math

import pyarrow as pa

from dd.models.measures.base import Measure, View


def compute(view: View) -> dict:
    """max |w| over every parameter (one number per replica)."""
    import jax
    import jax.numpy as jnp

    leaves = [jnp.max(jnp.abs(x.astype(jnp.float32))) for x in jax.tree.leaves(view.params)]
    return {"max_weight": jnp.max(jnp.stack(leaves))}


MEASURE = Measure(
    name="max_weight",
    columns={"max_weight": (pa.float64(), "largest absolute parameter (dd-moons plugin)")},
    compute=f"{__name__}:compute",
    ranges={"max_weight": (0.0, math.inf)},
)
