"""The weight norm per layer: a measure any trained network can be asked for
(``train.measures: layer_norms``). One file and one line in ``dd.models.measures``, the
pattern docs/extending.md shows."""

from __future__ import annotations

import pyarrow as pa

from dd.models.measures.base import Measure, View


def compute(view: View) -> dict:
    """The l2 norm of each top-level entry of the parameter tree (a layer: ``hidden_0``,
    ``logits``, ``block_0``, ...), in the tree's key order (sorted by name)."""
    import jax  # the engine's side only: declaring the measure imports no JAX
    import jax.numpy as jnp

    from dd.models.precision import floating

    def norm(tree):
        return jnp.sqrt(sum(jnp.sum(x.astype(floating()) ** 2) for x in jax.tree.leaves(tree)))

    return {"layer_norms": jnp.stack([norm(view.params[k]) for k in sorted(view.params)])}


MEASURE = Measure(
    name="layer_norms",
    columns={
        "layer_norms": (
            pa.list_(pa.float64()),
            "l2 norm of each layer's parameters (top-level parameter entries, by name)",
        )
    },
    compute=f"{__name__}:compute",
)
