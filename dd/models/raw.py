"""Raw features: the first ``n_features`` input coordinates, fitted in closed form; the
weak-features model of the theory, with its exact population risk on the Gaussian teacher."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from dd.models.base import FeatureMap, FeatureModel
from dd.spec.config import Data
from dd.spec.errors import SpecError
from dd.spec.fields import join


@dataclass(frozen=True, kw_only=True)
class RawFeatures(FeatureModel):
    """The first ``n_features`` input coordinates: the weak-features model of the theory."""

    name: str = "raw_features"

    def check_data(self, data: Data, path: str) -> None:
        super().check_data(data, path)
        if self.n_features > data.input_dim:
            raise SpecError(
                join(path, "model.n_features"),
                f"{self.n_features} exceeds the {data.input_dim} input coordinates of {data.name}",
            )


def featurize(model: RawFeatures, params: dict, x_ND: jax.Array) -> jax.Array:
    return x_ND[:, : model.n_features]


def width(model: RawFeatures, input_dim: int) -> int:
    """Raw features compile once at the full input width, the columns past a replica's
    ``n_features`` zeroed: a zero column changes neither the min-norm fit nor its
    predictions, so every p of a sweep shares one program."""
    return input_dim


def population_risk(model: RawFeatures, coef_PK: jax.Array, beta_D, scale_D, noise_var):
    """E[(y - x . coef)^2] on the teacher: the coefficients past p are 0."""
    var, p = scale_D**2, model.n_features
    return (
        jnp.sum(var[:p] * (coef_PK[:p, 0] - beta_D[:p]) ** 2)
        + jnp.sum(var[p:] * beta_D[p:] ** 2)
        + noise_var
    )


KIND = FeatureMap(
    config=RawFeatures,
    params=lambda key, model, input_dim: {},
    featurize=featurize,
    width=width,
    population_risk=population_risk,
    tiny=lambda: {"name": "raw_features", "n_features": 4},
)
