"""The 5-layer CNN of Nakkiran et al. 2019, "Deep Double Descent", width-scaled by k.

Four blocks ``Conv(3) -> BatchNorm -> ReLU`` of widths k, 2k, 4k, 8k (blocks 0..3), a
``MaxPool(2)`` after blocks 1, 2 and 3, a global max pool, then ``Dense(8k -> n_classes)``.
This follows the authors' ``make_cnn`` (harvard-machine-learning/double-descent,
``models/mcnn.py``): the first block runs at full resolution, and on 32x32 CIFAR the last
block's 4x4 output goes through their ``MaxPool(4)``, which is the global max used here, so
the same module works for any input size. Convolutions carry no bias (theirs do): BatchNorm
follows each one and removes it, so its true gradient is zero, and Adam turned that gradient's
rounding noise into steps that moved the running means differently in a block pack and alone.
Since dd 0.4.0 the CNN has 15k fewer parameters than the authors' (``n_params``); rows stored
before by a CNN sweep count and train the biased network.

``ndim`` picks 2-D images ``(N, H, W, C)`` with 3x3 kernels and 2x2 pools, or 1-D signals
``(N, L, C)`` with width-3 kernels and pools of 2. An input with no channel axis, ``(N, H, W)``
or ``(N, L)`` (MNIST-1D is ``(N, 40)``), is given one of size 1 by the module.
"""

import math
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from dd.models.base import ConvModel, Family, conv_program_width, n_outputs, round_up_width

BLOCK_WIDTH_MULTIPLIERS = (1, 2, 4, 8)
POOLED_BLOCKS = (1, 2, 3)


@dataclass(frozen=True, kw_only=True)
class CnnModel(ConvModel):
    """Nakkiran et al.'s 5-layer CNN of widths k, 2k, 4k, 8k (this module), 1-D or 2-D inputs."""

    name: str = "cnn"
    width: int = 64


def max_pool_2(x: jnp.ndarray, ndim: int) -> jnp.ndarray:
    """Max over non-overlapping windows of 2 along each of the ``ndim`` spatial axes (an odd
    trailing position is dropped, as a VALID pool does). Written as a reshape and a max, not
    a windowed reduction, so its gradient is an elementwise mask rather than XLA's
    select-and-scatter, which GPUs run slowly."""
    spatial = x.shape[1 : 1 + ndim]
    x = x[(slice(None),) + tuple(slice(0, 2 * (n // 2)) for n in spatial)]
    split = (x.shape[0],) + sum(((n // 2, 2) for n in spatial), ()) + (x.shape[-1],)
    return jnp.max(x.reshape(split), axis=tuple(2 + 2 * i for i in range(ndim)))


class CNN(nn.Module):
    """Nakkiran's 5-layer CNN with base width ``width`` (their k) over ``ndim`` spatial axes,
    each block's channels rounded up to a multiple of ``channel_multiple`` (1: theirs).

    BatchNorm uses batch statistics and updates ``batch_stats`` (momentum 0.9, i.e. PyTorch's
    0.1) when ``train``, the running averages otherwise.
    """

    width: int
    n_classes: int
    ndim: int = 2
    channel_multiple: int = 1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        if self.ndim not in (1, 2):
            raise ValueError(f"CNN.ndim must be 1 or 2, got {self.ndim}")
        if x.ndim == self.ndim + 1:
            x = x[..., None]
        spatial_axes = tuple(range(1, 1 + self.ndim))
        for block, multiplier in enumerate(BLOCK_WIDTH_MULTIPLIERS):
            x = nn.Conv(
                round_up_width(self.width * multiplier, floor=1, multiple=self.channel_multiple),
                kernel_size=(3,) * self.ndim,
                padding=1,
                use_bias=False,  # BatchNorm's offset follows
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=f"conv_{block}",
            )(x)
            x = nn.BatchNorm(
                use_running_average=not train,
                momentum=0.9,
                epsilon=1e-5,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=f"norm_{block}",
            )(x)
            x = nn.relu(x)
            if block in POOLED_BLOCKS:
                x = max_pool_2(x, self.ndim)
        features_BxF = jnp.max(x, axis=spatial_axes)
        return nn.Dense(
            self.n_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="logits"
        )(features_BxF)


def n_params(
    width: int,
    n_classes: int,
    input_shape: tuple[int, ...],
    ndim: int = 2,
    channel_multiple: int = 1,
) -> int:
    """Number of trainable parameters (``params``, not ``batch_stats``) of the CNN.

    ``input_shape`` is one example's shape (no batch axis); its channel count c is the last
    axis, or 1 when it has only the ``ndim`` spatial axes. With kernel volume K = 3**ndim,
    conv weights K (c k + k 2k + 2k 4k + 4k 8k) = K (c k + 42 k^2) (no conv biases),
    BatchNorm scale and offset 2 * 15k, and the Dense 8k C + C:

        K (c k + 42 k^2) + 30 k + 8 k C + C

    (with ``channel_multiple``, each block's channels rounded up, as the module rounds them).
    """
    in_channels = 1 if len(input_shape) == ndim else input_shape[-1]
    kernel_volume = 3**ndim
    c = [in_channels] + [
        round_up_width(m * width, floor=1, multiple=channel_multiple)
        for m in BLOCK_WIDTH_MULTIPLIERS
    ]
    kernels = kernel_volume * sum(a * b for a, b in zip(c, c[1:], strict=False))
    return kernels + 2 * sum(c[1:]) + c[-1] * n_classes + n_classes


def spatial_dims(trial) -> int:
    shape = trial.data.input_shape
    return 1 if len(shape) == 1 else 2


def _block(trial, width: int, n_out: int, dtype) -> CNN:
    return CNN(width=width, n_classes=n_out, ndim=spatial_dims(trial), dtype=dtype)


def _build(trial, dtype) -> CNN:
    return CNN(
        width=trial.model.width,
        n_classes=n_outputs(trial),
        ndim=spatial_dims(trial),
        channel_multiple=trial.model.channel_multiple,
        dtype=dtype,
    )


def _count(trial) -> int:
    model = trial.model
    return n_params(
        model.width,
        n_outputs(trial),
        trial.data.input_shape,
        ndim=spatial_dims(trial),
        channel_multiple=model.channel_multiple,
    )


def _activation_floats(trial) -> int:
    """One map per block: k, 2k at full size, 4k at half, 8k at a quarter of the positions
    (a pool after blocks 1 and 2)."""
    positions = math.prod(trial.data.input_shape[: spatial_dims(trial)])
    return 7 * trial.model.width * positions


KIND = Family(
    config=CnnModel,
    build=_build,
    count=_count,
    activation_floats=_activation_floats,
    program_width=conv_program_width,
    rounded_width=conv_program_width,
    convolutional=lambda trial: True,
    block=_block,
    tiny=lambda: {"name": "cnn", "width": 2},
)
