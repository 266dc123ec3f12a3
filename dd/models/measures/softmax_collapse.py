"""Softmax collapse (Prieto et al. 2025, "Grokking at the edge of numerical stability"): the
fraction of a replica's training examples whose softmax probability of their (training)
label is exactly 1.0 in the trial's precision (float32; float64 in a float64 pack), so that
their cross-entropy gradient vanishes. One file and
one line in ``dd.models.measures`` (``train.measures: softmax_collapse``)."""

from __future__ import annotations

import pyarrow as pa

from dd.models.measures.base import Measure, View, training_inputs


def compute(view: View) -> dict:
    """Evaluates the network on all the replica's training rows at once (padding rows
    masked out): meant for the small training sets of grokking tasks."""
    import jax  # the engine's side only
    import jax.numpy as jnp

    from dd.models.precision import floating

    setup = view.setup
    logits = view.logits(view.params, training_inputs(view)).astype(floating())
    p_y = jnp.take_along_axis(jax.nn.softmax(logits, axis=-1), setup.y_N[:, None], axis=-1)[:, 0]
    mask = setup.mask_N.astype(floating())
    collapsed = jnp.sum(jnp.where(p_y == 1.0, mask, 0.0)) / jnp.maximum(jnp.sum(mask), 1.0)
    return {"softmax_collapse": collapsed}


MEASURE = Measure(
    name="softmax_collapse",
    columns={
        "softmax_collapse": (
            pa.float64(),
            "fraction of training examples whose softmax probability of their label is "
            "exactly 1 in the trial's precision (Prieto et al. 2025's softmax collapse)",
        )
    },
    compute=f"{__name__}:compute",
    ranges={"softmax_collapse": (0.0, 1.0)},
)
