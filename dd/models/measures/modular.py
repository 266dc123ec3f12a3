"""The progress measures of modular-arithmetic models (Nanda et al. 2023, Zhong et al. 2023),
declared: their columns here, their JAX in ``dd.models.measures.mechanistic``. The modular
dataset kind asks for them (``ModularData.measures``); each is computed where the trial has
what it needs (an input embedding; the directions of x +- y for x+y and x-y)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from dd.models.measures.base import Measure

MECHANISTIC = "dd.models.measures.mechanistic"


def _key_freqs(values: dict[str, Any]) -> dict[str, Any]:
    """The frequencies ranked by norm become the key frequencies (the first n_key_freqs)."""
    row = dict(values)
    if "freq_order" in row:  # not where the family has no input embedding
        row["key_freqs"] = row.pop("freq_order")[: row["n_key_freqs"]]
    return row


FOURIER = Measure(
    name="fourier",
    columns={
        "fourier_norms": (
            pa.list_(pa.float64()),
            "norm of the input embedding per frequency "
            "0..(p-1)/2 of Z_p (modular data, dd.models.measures.mechanistic)",
        ),
        "key_freqs": (
            pa.list_(pa.int64()),
            "the fewest frequencies holding key_share of the embedding's squared norm, "
            "largest first",
        ),
        "n_key_freqs": (pa.int64(), "how many key frequencies"),
        "fourier_gini": (pa.float64(), "Gini coefficient of the frequency norms (1 = sparse)"),
    },
    compute=f"{MECHANISTIC}:fourier",
    to_row=_key_freqs,
)

RESTRICTED = Measure(
    name="restricted_excluded",
    columns={
        "restricted_loss": (
            pa.float64(),
            "cross-entropy of the logits kept to the key frequencies, over every pair "
            "(Nanda et al.)",
        ),
        "excluded_loss": (
            pa.float64(),
            "training cross-entropy of the logits without the key frequencies (Nanda et al.)",
        ),
    },
    compute=f"{MECHANISTIC}:restricted",
)

SYMMETRICITY = Measure(
    name="grad_symmetricity",
    columns={
        "grad_symmetricity": (
            pa.float64(),
            "cosine of the correct logit's gradients with respect "
            "to the x and y embeddings (Zhong et al.)",
        ),
    },
    compute=f"{MECHANISTIC}:symmetricity",
)

DISTANCE = Measure(
    name="distance_irrelevance",
    columns={
        "distance_irrelevance": (
            pa.float64(),
            "spread of the correct logit over x + y at fixed "
            "x - y, relative to its overall spread (Zhong et al.)",
        ),
    },
    compute=f"{MECHANISTIC}:distance",
)
