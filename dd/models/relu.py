"""Random ReLU features, fitted in closed form."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax

from dd.models.base import FeatureMap, FeatureModel
from dd.models.rng import named


@dataclass(frozen=True, kw_only=True)
class ReluFeatures(FeatureModel):
    """Random ReLU features: max(0, <w_k, x> + b_k), w_k ~ N(0, I/d), b_k ~ N(0, 1)."""

    name: str = "relu_features"


def params(key: jax.Array, model: ReluFeatures, input_dim: int) -> dict[str, jax.Array]:
    k_w, k_b = jax.random.split(named(key, "features"))
    return {
        "w": jax.random.normal(k_w, (input_dim, model.n_features)) / math.sqrt(input_dim),
        "b": jax.random.normal(k_b, (model.n_features,)),
    }


def featurize(model: ReluFeatures, params: dict[str, jax.Array], x_ND: jax.Array) -> jax.Array:
    return jax.nn.relu(x_ND @ params["w"] + params["b"])


KIND = FeatureMap(
    config=ReluFeatures,
    params=params,
    featurize=featurize,
    tiny=lambda: {"name": "relu_features", "n_features": 8},
)
