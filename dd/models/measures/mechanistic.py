"""Progress measures of modular-arithmetic models (Nanda et al. 2023, Zhong et al. 2023).

Each function is pure JAX on one replica; the measures of ``dd.models.measures.modular`` call
them (the ``compute`` functions at the end) inside the pack's compiled evaluation, vmapped
over replicas. The input embedding of a model is read as two (p, d) tables, E_x and E_y, the
vectors the tokens x and y enter with, which the model family gives
(``Family.input_embedding``): the token embedding (the same table twice) for a transformer,
the two halves of the first layer for an MLP on one-hot inputs. The definitions follow Nanda
et al., "Progress measures for grokking via mechanistic interpretability", and Zhong et al.,
"The Clock and the Pizza"; in short:

- Fourier norms: the embedding [E_x | E_y] in the real Fourier basis of Z_p; frequency 0 is
  the constant, frequency k the cos and sin pair. The key frequencies are the fewest that
  hold ``key_share`` of the squared norm; the Gini coefficient of the norms measures sparsity.
- Restricted / excluded loss (x+y and x-y only): the logits over every pair, projected onto
  (restricted, with the per-class mean kept) or stripped of (excluded) the directions
  cos(w_k s), sin(w_k s), s = x +- y, of the key frequencies; cross-entropy over all pairs
  (restricted) and over the training pairs (excluded).
- Gradient symmetricity: the cosine between the gradients of the correct logit with respect
  to E_x[x] and E_y[y], averaged over sampled pairs (x != y); 1 for an MLP by construction.
- Distance irrelevance (x+y and x-y): the correct logit arranged by (x + y, x - y) mod p;
  the mean over x - y of the standard deviation over x + y, over the overall standard deviation.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from dd.models.measures.base import View
from dd.models.rng import named

SYMMETRY_PAIRS = 256  # pairs sampled for the gradient symmetricity

Embedding = Callable[..., tuple[jax.Array, jax.Array]]  # (params, p) -> (E_x, E_y)


def fourier_measures(e_x: jax.Array, e_y: jax.Array, basis_PP: jax.Array, key_share: float) -> dict:
    """Norm per frequency (0..(p-1)/2), frequencies by falling norm, key count and Gini."""
    coeffs = basis_PP @ jnp.concatenate([e_x, e_y], axis=1).astype(jnp.float32)
    energy = jnp.sum(coeffs**2, axis=1)  # per basis row
    per_freq = jnp.concatenate([energy[:1], energy[1::2] + energy[2::2]])
    order = jnp.argsort(-per_freq)
    cumulative = jnp.cumsum(per_freq[order]) / jnp.sum(per_freq)
    n_key = jnp.minimum(jnp.sum(cumulative < key_share) + 1, per_freq.shape[0])
    norms = jnp.sqrt(per_freq)
    return {
        "fourier_norms": norms,
        "freq_order": order.astype(jnp.int32),
        "n_key_freqs": n_key.astype(jnp.int32),
        "fourier_gini": gini(norms),
    }


def gini(x: jax.Array) -> jax.Array:
    """Gini coefficient of non-negative values: 0 when equal, (n-1)/n when one holds all."""
    n = x.shape[0]
    ranked = jnp.sort(x)
    return 2 * jnp.sum(jnp.arange(1, n + 1) * ranked) / (n * jnp.sum(ranked)) - (n + 1) / n


def restricted_excluded(
    logits_PC: jax.Array,
    labels_P: jax.Array,
    train_labels_P: jax.Array,
    in_train_P: jax.Array,
    directions_PK: jax.Array,
    n_key: jax.Array,
    freq_order: jax.Array,
) -> dict:
    """Restricted loss over every pair and excluded loss over the training pairs."""
    n_freq = directions_PK.shape[1] // 2 + 1
    key = jnp.zeros(n_freq, bool).at[freq_order].set(jnp.arange(n_freq) < n_key)
    keep_K = jnp.repeat(key[1:], 2)  # the constant is kept by both, as the per-class mean
    mean_C = jnp.mean(logits_PC, axis=0)
    coeffs_KC = directions_PK.T @ (logits_PC - mean_C)
    projection = directions_PK @ (keep_K[:, None] * coeffs_KC)
    restricted = optax.softmax_cross_entropy_with_integer_labels(mean_C + projection, labels_P)
    excluded = optax.softmax_cross_entropy_with_integer_labels(
        logits_PC - projection, train_labels_P
    )
    return {
        "restricted_loss": jnp.mean(restricted),
        "excluded_loss": jnp.sum(in_train_P * excluded) / jnp.sum(in_train_P),
    }


def gradient_symmetricity(
    correct_logit: Callable,
    embedding: Embedding,
    params,
    pairs: jax.Array,
    labels: jax.Array,
    p: int,
    key: jax.Array,
) -> jax.Array:
    """Mean cosine between d logit / d E_x[x] and d logit / d E_y[y] over sampled pairs.

    ``correct_logit(params, pair, label)`` is the logit of ``label`` for one pair;
    ``embedding(params, p)`` the family's (E_x, E_y) of a parameter-shaped tree.
    """
    pick = jax.random.choice(key, pairs.shape[0], (SYMMETRY_PAIRS,))
    pick = jnp.where(pairs[pick, 0] == pairs[pick, 1], (pick + 1) % pairs.shape[0], pick)

    def cosine(i):
        grads = jax.grad(correct_logit)(params, pairs[i], labels[i])
        g_x, g_y = embedding(grads, p)
        u, v = g_x[pairs[i, 0]], g_y[pairs[i, 1]]
        return jnp.sum(u * v) / (jnp.linalg.norm(u) * jnp.linalg.norm(v) + 1e-30)

    return jnp.mean(jax.lax.map(cosine, pick))


def distance_irrelevance(
    logits_PC: jax.Array, pairs: jax.Array, labels: jax.Array, p: int
) -> jax.Array:
    """Per-(x - y) spread of the correct logit over x + y, relative to its overall spread."""
    correct = jnp.take_along_axis(logits_PC, labels[:, None], axis=1)[:, 0]
    s, d = (pairs[:, 0] + pairs[:, 1]) % p, (pairs[:, 0] - pairs[:, 1]) % p
    grid_SD = jnp.zeros((p, p)).at[s, d].set(correct)
    return jnp.mean(jnp.std(grid_SD, axis=0)) / jnp.std(grid_SD)


# The compute functions of the measures declared in dd.models.measures.modular.


def fourier(view: View) -> dict:
    if view.input_embedding is None:
        return {}
    data = view.trial.data
    e_x, e_y = view.input_embedding(view.params, data.p)
    return fourier_measures(e_x, e_y, view.data.fourier_basis_FP, data.key_share)


def restricted(view: View) -> dict:
    if "n_key_freqs" not in view.measured or view.data.sum_directions_PF is None:
        return {}
    pool = view.pool
    return restricted_excluded(
        pool.logits_PK,
        view.data.y_pool_P,
        pool.train_labels_P,
        pool.in_train_P,
        view.data.sum_directions_PF,
        view.measured["n_key_freqs"],
        view.measured["freq_order"],
    )


def symmetricity(view: View) -> dict:
    if view.input_embedding is None:
        return {}

    def correct_logit(params, pair, label):
        return view.logits(params, pair[None])[0, label]

    value = gradient_symmetricity(
        correct_logit,
        view.input_embedding,
        view.params,
        view.data.x_pool_PD,
        view.data.y_pool_P,
        view.trial.data.p,
        named(view.setup.key, "symmetricity"),
    )
    return {"grad_symmetricity": value}


def distance(view: View) -> dict:
    if view.data.sum_directions_PF is None:
        return {}
    d = view.data
    return {
        "distance_irrelevance": distance_irrelevance(
            view.pool.logits_PK, d.x_pool_PD, d.y_pool_P, view.trial.data.p
        )
    }
