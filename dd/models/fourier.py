"""Random Fourier features (Belkin et al. 2019), and the PCA + Fourier map of Curth et al. 2023,
fitted in closed form."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from dd.models.base import FeatureMap, FeatureModel
from dd.models.rng import named
from dd.spec.config import Data
from dd.spec.errors import SpecError
from dd.spec.fields import Bound, bounded, join


@dataclass(frozen=True, kw_only=True)
class FourierFeatures(FeatureModel):
    """Random Fourier features (Belkin et al. 2019): cos and sin of <v_k, x>, v_k ~ N(0, I/sigma^2).

    ``n_features`` counts real features: ceil(n/2) frequencies, each giving a cos and a sin,
    so the interpolation threshold sits at n_features = n_train.
    """

    name: str = "fourier_features"
    bandwidth: float = bounded(5.0, lo=0, lo_open=True)

    @property
    def n_fourier(self) -> int:
        """How many of the features are random Fourier features."""
        return self.n_features


@dataclass(frozen=True, kw_only=True)
class PcaFourierFeatures(FourierFeatures):
    """Two complexity axes in one feature map (Curth et al. 2023): the projections of the inputs
    on their first ``pca_components`` principal axes (of the unlabelled training pool), then
    random Fourier features up to ``n_features`` in all. Raising the components to n_train and
    then adding excess Fourier features gives a double descent in the raw feature count that
    folds back into a U against the effective parameters (sweeps/uturn_digits.yaml).
    """

    name: str = "pca_fourier_features"
    pca_components: int = 0

    @property
    def n_fourier(self) -> int:
        return self.n_features - self.pca_components

    def check(self, path: str) -> None:
        Bound(lo=0, hi=self.n_features).check(join(path, "pca_components"), self.pca_components)

    def check_data(self, data: Data, path: str) -> None:
        super().check_data(data, path)
        if not data.FIXED_POOL:
            raise SpecError(
                join(path, "model.name"),
                f"pca_fourier_features takes its principal axes from a training pool; "
                f"{data.name} data has none",
            )
        if self.pca_components > data.input_dim:
            raise SpecError(
                join(path, "model.pca_components"),
                f"{self.pca_components} exceeds the {data.input_dim} "
                f"input coordinates of {data.name}",
            )


def params(key: jax.Array, model: FourierFeatures, input_dim: int) -> dict[str, jax.Array]:
    n_freq = -(-model.n_fourier // 2)
    return {"v": jax.random.normal(named(key, "features"), (input_dim, n_freq)) / model.bandwidth}


def featurize(model: FourierFeatures, params: dict[str, jax.Array], x_ND: jax.Array) -> jax.Array:
    """cos and sin of the projections, interleaved, cut to ``n_fourier``; for the PCA map the
    principal projections (``params["pca"]``) come first."""
    proj_NF = x_ND @ params["v"]
    pairs = jnp.stack([jnp.cos(proj_NF), jnp.sin(proj_NF)], axis=-1)
    fourier_NF = pairs.reshape(x_ND.shape[0], -1)[:, : model.n_fourier]
    if "pca" in params:
        return jnp.concatenate([x_ND @ params["pca"], fourier_NF], axis=1)
    return fourier_NF


def principal_axes(x_ND: jax.Array, k: int) -> jax.Array:
    """(D, k): the first ``k`` principal axes of the rows of ``x_ND``."""
    _, _, vt_RD = jnp.linalg.svd(x_ND - x_ND.mean(0), full_matrices=False)
    return vt_RD[:k].T


KIND = FeatureMap(
    config=FourierFeatures,
    params=params,
    featurize=featurize,
    tiny=lambda: {"name": "fourier_features", "n_features": 8},
)
PCA_KIND = FeatureMap(
    config=PcaFourierFeatures,
    params=params,
    featurize=featurize,
    pool_params=lambda model, x_PD: {"pca": principal_axes(x_PD, model.pca_components)},
    tiny=lambda: {"name": "pca_fourier_features", "n_features": 8, "pca_components": 2},
)
