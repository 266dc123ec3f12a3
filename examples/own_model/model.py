"""A researcher's own network, outside dd: a small MLP-Mixer for 1-D signals.

The signal (length L, e.g. MNIST-1D's 40) is cut into patches of ``patch`` samples; each
patch is embedded in ``width`` channels; ``depth`` blocks then mix across patches (token
mixing) and across channels (channel mixing), each a two-layer MLP with a residual
connection and LayerNorm; the patches are averaged and a Dense gives the logits.

dd builds it as ``TinyMixer(width=..., n_outputs=..., **options, dtype=...)`` and sweeps
``width``: see examples/own_model/spec.yaml and docs/plugins.md.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class MixerBlock(nn.Module):
    tokens_hidden: int
    channels_hidden: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BTC: jnp.ndarray) -> jnp.ndarray:
        y = nn.LayerNorm(dtype=self.dtype)(x_BTC).swapaxes(1, 2)  # (B, C, T): mix tokens
        y = nn.Dense(self.tokens_hidden, dtype=self.dtype)(y)
        y = nn.Dense(x_BTC.shape[1], dtype=self.dtype)(nn.gelu(y)).swapaxes(1, 2)
        x_BTC = x_BTC + y
        y = nn.LayerNorm(dtype=self.dtype)(x_BTC)  # mix channels
        y = nn.Dense(self.channels_hidden, dtype=self.dtype)(y)
        return x_BTC + nn.Dense(x_BTC.shape[2], dtype=self.dtype)(nn.gelu(y))


class TinyMixer(nn.Module):
    """``width`` channels per patch; hidden MLP sizes are ``expansion`` times larger."""

    width: int
    n_outputs: int
    depth: int = 1
    patch: int = 5
    expansion: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BL: jnp.ndarray) -> jnp.ndarray:  # no train argument: dd adds one
        b, length = x_BL.shape[0], x_BL.shape[1]
        x_BTP = x_BL[:, : length - length % self.patch].reshape(b, -1, self.patch)
        x_BTC = nn.Dense(self.width, dtype=self.dtype, name="embed")(x_BTP)
        for i in range(self.depth):
            x_BTC = MixerBlock(
                self.expansion * x_BTC.shape[1],
                self.expansion * self.width,
                dtype=self.dtype,
                name=f"block_{i}",
            )(x_BTC)
        x_BC = nn.LayerNorm(dtype=self.dtype)(x_BTC).mean(axis=1)
        return nn.Dense(self.n_outputs, dtype=self.dtype, name="logits")(x_BC)
