"""Decoder-only transformers on modular-arithmetic tokens: Nanda et al. and Power et al.

Input for a pair (x, y): the tokens ``x y =`` (Nanda), or ``x op y =`` (Power, ``op_token``),
over a vocabulary of the p residues plus ``=`` (index p) and ``op`` (index p + 1). With
d = width, H heads of size d / H, causal attention and learned positions:

    h_0 = E[tokens] + P,
    h <- h + Attn(LN(h)),   h <- h + W_out relu(W_in LN(h) + b_in) + b_out   (per layer),
    logits = U LN(h)[last position]   over the p answers,

where LN is the identity without ``layer_norm`` (Nanda's model) and the unembedding U is not
tied to E. Attention has no biases. Zhong et al.'s ``attention_rate`` alpha replaces the
attention pattern A by alpha A + (1 - alpha) (uniform over the visible positions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dd.models.base import Family, NetworkModel
from dd.spec.config import Data
from dd.spec.errors import SpecError
from dd.spec.fields import bounded, join

EMBED = "embed"  # the token embedding's parameter name (``input_embedding``)


@dataclass(frozen=True, kw_only=True)
class TransformerModel(NetworkModel):
    """A decoder-only transformer on modular-arithmetic tokens (this module).

    ``width`` is d_model, ``depth`` the number of layers, ``heads`` attention heads of
    width / heads, ``d_mlp`` the hidden ReLU layer. Defaults are Nanda et al.'s one-layer
    model (no LayerNorm, input ``a b =``); Power et al.'s is depth 2 with ``layer_norm`` and
    ``op_token`` (input ``x op y =``). ``attention_rate`` alpha mixes attention as
    alpha * softmax + (1 - alpha) * uniform (Zhong et al.: 1 favours clock, 0 pizza circuits).
    """

    name: str = "transformer"
    width: int = 128
    depth: int = bounded(1, lo=1, hi=64)
    heads: int = bounded(4, lo=1)
    d_mlp: int = bounded(512, lo=1)
    layer_norm: bool = False
    op_token: bool = False
    attention_rate: float = bounded(1.0, lo=0.0, hi=1.0)

    READS_TOKENS: ClassVar[bool] = True

    def check_data(self, data: Data, path: str) -> None:
        if not data.vocab:
            raise SpecError(
                join(path, "model.name"),
                f"transformer reads modular-arithmetic tokens; {data.name} is not modular data",
            )

    def check(self, path: str) -> None:
        if self.width % self.heads:
            raise SpecError(
                join(path, "heads"), f"must divide width {self.width} (got {self.heads})"
            )


class Block(nn.Module):
    width: int
    heads: int
    d_mlp: int
    layer_norm: bool
    attention_rate: float
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, h_BTD: jax.Array) -> jax.Array:
        b, t, d = h_BTD.shape
        dh = d // self.heads
        norm = (
            (lambda name: nn.LayerNorm(dtype=self.dtype, name=name))
            if self.layer_norm
            else (lambda name: lambda v: v)
        )
        z = norm("ln_attn")(h_BTD)
        qkv = nn.DenseGeneral((3, self.heads, dh), use_bias=False, dtype=self.dtype, name="qkv")(z)
        q_BTHK, k_BTHK, v_BTHK = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        scores_BHTS = jnp.einsum("bthk,bshk->bhts", q_BTHK, k_BTHK) / jnp.sqrt(dh)
        causal_TS = jnp.tril(jnp.ones((t, t), bool))
        pattern = jax.nn.softmax(jnp.where(causal_TS, scores_BHTS, -1e30), axis=-1)
        uniform_TS = causal_TS / causal_TS.sum(-1, keepdims=True)
        pattern = self.attention_rate * pattern + (1.0 - self.attention_rate) * uniform_TS
        mixed_BTHK = jnp.einsum("bhts,bshk->bthk", pattern, v_BTHK)
        h_BTD = h_BTD + nn.DenseGeneral(
            d, axis=(-2, -1), use_bias=False, dtype=self.dtype, name="out"
        )(mixed_BTHK)
        z = norm("ln_mlp")(h_BTD)
        hidden = nn.relu(nn.Dense(self.d_mlp, dtype=self.dtype, name="mlp_in")(z))
        return h_BTD + nn.Dense(d, dtype=self.dtype, name="mlp_out")(hidden)


class Transformer(nn.Module):
    """Logits over the ``p`` answers for a batch of pairs ``x`` (B, 2) of int tokens.

    The sizes come from ``dd.spec.config.TransformerModel`` (its defaults are Nanda et al.'s)."""

    p: int
    width: int
    depth: int
    heads: int
    d_mlp: int
    layer_norm: bool
    op_token: bool
    attention_rate: float
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        b = x.shape[0]
        equals = jnp.full((b, 1), self.p, x.dtype)
        if self.op_token:
            tokens = jnp.concatenate(
                [x[:, :1], jnp.full((b, 1), self.p + 1, x.dtype), x[:, 1:2], equals], axis=1
            )
        else:
            tokens = jnp.concatenate([x, equals], axis=1)
        vocab, t = self.p + 1 + int(self.op_token), tokens.shape[1]
        h = nn.Embed(vocab, self.width, dtype=self.dtype, name=EMBED)(tokens)
        # drawn in float32 like every other parameter (a float64 pack widens the draws)
        h = h + self.param("pos", nn.initializers.normal(0.02), (t, self.width), jnp.float32)
        for layer in range(self.depth):
            h = Block(
                self.width,
                self.heads,
                self.d_mlp,
                self.layer_norm,
                self.attention_rate,
                self.dtype,
                name=f"block_{layer}",
            )(h)
        last = h[:, -1]
        if self.layer_norm:
            last = nn.LayerNorm(dtype=self.dtype, name="ln_final")(last)
        return nn.Dense(self.p, use_bias=False, dtype=self.dtype, name="unembed")(last)


def n_params(p: int, width: int, depth: int, d_mlp: int, layer_norm: bool, op_token: bool) -> int:
    """Parameters of ``Transformer``: embeddings (p + 1 [+ 1]) d, positions T d, per layer
    attention 4 d^2 (no biases) and MLP 2 d d_mlp + d_mlp + d, LayerNorms 2 d each
    (two per layer and a final one), unembedding d p."""
    vocab, t = p + 1 + int(op_token), 3 + int(op_token)
    per_layer = 4 * width * width + 2 * width * d_mlp + d_mlp + width
    norms = (2 * depth + 1) * 2 * width if layer_norm else 0
    return vocab * width + t * width + depth * per_layer + norms + width * p


def _build(trial, dtype) -> Transformer:
    m = trial.model
    return Transformer(
        p=trial.data.vocab,
        width=m.width,
        depth=m.depth,
        heads=m.heads,
        d_mlp=m.d_mlp,
        layer_norm=m.layer_norm,
        op_token=m.op_token,
        attention_rate=m.attention_rate,
        dtype=dtype,
    )


def _count(trial) -> int:
    m = trial.model
    return n_params(trial.data.vocab, m.width, m.depth, m.d_mlp, m.layer_norm, m.op_token)


def _activation_floats(trial) -> int:
    """A few tokens, each with attention and the MLP."""
    return 4 * (8 * trial.model.width + 2 * trial.model.d_mlp)


def input_embedding(params, vocab: int):
    """(E_x, E_y): the token embedding's first ``vocab`` rows, the same table for x and y."""
    table = params[EMBED]["embedding"][:vocab]
    return table, table


KIND = Family(
    config=TransformerModel,
    build=_build,
    count=_count,
    activation_floats=_activation_floats,
    input_embedding=input_embedding,
    tiny=lambda: {"name": "transformer", "width": 8, "heads": 2, "d_mlp": 16},
)
