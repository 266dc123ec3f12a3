"""The cosine between the training-loss gradient and the weights, over all parameters
(``train.measures: grad_weight_cosine``). Near -1 the gradient points along the weights
(the loss falls as the weights grow, the naive loss minimisation Prieto et al. 2025 tie to
softmax collapse and that their perpendicular gradient removes); near 0 it is orthogonal to
them. One file and one line in ``dd.models.measures``."""

from __future__ import annotations

import pyarrow as pa

from dd.models.measures.base import Measure, View, training_inputs


def compute(view: View) -> dict:
    """The gradient of the mean training objective over all the replica's training rows at
    once (full batch, as the network is evaluated: batch statistics frozen; weight decay
    left out), flattened over every parameter, and its cosine with the parameters."""
    import jax  # the engine's side only
    import jax.numpy as jnp

    from dd.models.precision import floating

    setup, x = view.setup, training_inputs(view)
    mask = setup.mask_N.astype(floating())

    def objective(params):
        per_example = view.loss(view.logits(params, x).astype(floating()), setup.y_N)
        return jnp.sum(mask * per_example) / jnp.maximum(jnp.sum(mask), 1.0)

    grads = jax.grad(objective)(view.params)
    flat_g = [g.astype(floating()).ravel() for g in jax.tree.leaves(grads)]
    flat_w = [w.astype(floating()).ravel() for w in jax.tree.leaves(view.params)]
    dot = sum(jnp.dot(g, w) for g, w in zip(flat_g, flat_w, strict=True))
    g_norm = jnp.sqrt(sum(jnp.sum(g * g) for g in flat_g))
    w_norm = jnp.sqrt(sum(jnp.sum(w * w) for w in flat_w))
    return {"grad_weight_cosine": dot / jnp.maximum(g_norm * w_norm, 1e-30)}


MEASURE = Measure(
    name="grad_weight_cosine",
    columns={
        "grad_weight_cosine": (
            pa.float64(),
            "cosine between the full-batch training-loss gradient and the weights, over all "
            "parameters (weight decay left out)",
        )
    },
    compute=f"{__name__}:compute",
    ranges={"grad_weight_cosine": (-1.0, 1.0)},
)
