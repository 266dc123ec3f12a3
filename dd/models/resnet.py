"""PreActResNet18 of width k, the ResNet family of Nakkiran et al. 2019, "Deep Double Descent".

Pre-activation ResNet (He, Zhang, Ren & Sun 2016, "Identity Mappings in Deep Residual
Networks") for 32x32 inputs: a 3x3 stem conv of width k, four stages of two pre-activation
basic blocks with widths k, 2k, 4k, 8k and first-block strides 1, 2, 2, 2, a final
BatchNorm + ReLU, global average pooling and ``Dense(8k -> n_classes)``. k = 64 is the
standard ResNet18. Convolutions carry no bias; the Dense does.

Nakkiran et al. use the kuangliu/pytorch-cifar PreActResNet18, which omits the final
BatchNorm + ReLU: 2 * 8k = 1024 fewer parameters at k = 64 (11,171,146 against this
module's 11,172,170 for 10 classes on 32x32x3).
"""

import functools
import math
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from dd.models.base import ConvModel, Family, conv_program_width, n_outputs, round_up_width
from dd.spec.config import Data
from dd.spec.errors import SpecError
from dd.spec.fields import join

STAGE_WIDTH_MULTIPLIERS = (1, 2, 4, 8)
STAGE_STRIDES = (1, 2, 2, 2)
BLOCKS_PER_STAGE = 2


@dataclass(frozen=True, kw_only=True)
class ResNet18Model(ConvModel):
    """PreActResNet18 with widths k, 2k, 4k, 8k (this module); k = 64 is the standard net."""

    name: str = "resnet18"
    width: int = 64

    def check_data(self, data: Data, path: str) -> None:
        super().check_data(data, path)
        if len(data.input_shape) != 3:
            raise SpecError(
                join(path, "model.name"),
                f"resnet18 needs images; {data.name} examples have shape {data.input_shape}",
            )


class PreActBlock(nn.Module):
    """Pre-activation basic block with ``features`` output channels:

        a = relu(BN(x)),   y = conv3x3(relu(BN(conv3x3_s(a)))) + shortcut,

    where ``conv3x3_s`` has stride ``strides`` and the shortcut is ``x`` when the shapes agree,
    else the projection ``conv1x1_s(a)``.
    """

    features: int
    strides: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        norm = functools.partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        conv = functools.partial(
            nn.Conv, self.features, use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype
        )
        preactivation = nn.relu(norm(name="norm_in")(x))
        if self.strides != 1 or x.shape[-1] != self.features:
            shortcut = conv((1, 1), strides=self.strides, padding=0, name="shortcut")(preactivation)
        else:
            shortcut = x
        h = conv((3, 3), strides=self.strides, padding=1, name="conv_in")(preactivation)
        h = nn.relu(norm(name="norm_mid")(h))
        h = conv((3, 3), padding=1, name="conv_out")(h)
        return h + shortcut


class PreActResNet18(nn.Module):
    """PreActResNet18 with base width ``width`` (Nakkiran's k) on NHWC images, each stage's
    channels rounded up to a multiple of ``channel_multiple`` (1: the network itself).

    BatchNorm uses batch statistics and updates ``batch_stats`` (momentum 0.9, i.e. PyTorch's
    0.1) when ``train``, the running averages otherwise.
    """

    width: int
    n_classes: int
    channel_multiple: int = 1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def channels(self, multiplier: int) -> int:
        return round_up_width(multiplier * self.width, floor=1, multiple=self.channel_multiple)

    @nn.compact
    def __call__(self, x_BxHxWxC: jnp.ndarray, train: bool) -> jnp.ndarray:
        if x_BxHxWxC.ndim != 4:
            raise ValueError(f"PreActResNet18 takes (N, H, W, C) images, got {x_BxHxWxC.shape}")
        h = nn.Conv(
            self.channels(1),
            (3, 3),
            padding=1,
            use_bias=False,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="stem",
        )(x_BxHxWxC)
        for stage, (multiplier, stage_stride) in enumerate(
            zip(STAGE_WIDTH_MULTIPLIERS, STAGE_STRIDES, strict=True)
        ):
            for block in range(BLOCKS_PER_STAGE):
                h = PreActBlock(
                    self.channels(multiplier),
                    strides=stage_stride if block == 0 else 1,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    name=f"stage{stage}_block{block}",
                )(h, train)
        h = nn.BatchNorm(
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="final_norm",
        )(h)
        features_BxF = jnp.mean(nn.relu(h), axis=(1, 2))
        return nn.Dense(
            self.n_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="logits"
        )(features_BxF)


def n_params(
    width: int, n_classes: int, input_shape: tuple[int, ...], channel_multiple: int = 1
) -> int:
    """Number of trainable parameters (``params``, not ``batch_stats``) of PreActResNet18.

    ``input_shape`` is one example's ``(H, W, c)``. Summing the stage by stage counts:
    conv weights 9 c k (stem) + 36 k^2 + 128 k^2 + 512 k^2 + 2048 k^2 (stages 0..3, the
    1x1 projections included) = 9 c k + 2724 k^2; BatchNorm scale and offset
    8k + 14k + 28k + 56k (stages) + 16k (final) = 122 k; the Dense 8 k C + C:

        2724 k^2 + 9 c k + 122 k + 8 k C + C

    (with ``channel_multiple``, each stage's channels rounded up, as the module rounds them).
    """
    c = [
        round_up_width(m * width, floor=1, multiple=channel_multiple)
        for m in STAGE_WIDTH_MULTIPLIERS
    ]
    total = 9 * input_shape[-1] * c[0] + 36 * c[0] ** 2 + 8 * c[0]  # stem, stage 0
    for before, after in zip(c, c[1:], strict=False):  # stages 1..3: stride-2 first block
        total += 9 * before * after + 27 * after**2 + before * after  # convs, 1x1 projection
        total += 2 * (before + 3 * after)  # four BatchNorms
    return total + 2 * c[-1] + c[-1] * n_classes + n_classes


def _block(trial, width: int, n_out: int, dtype) -> PreActResNet18:
    return PreActResNet18(width=width, n_classes=n_out, dtype=dtype)


def _build(trial, dtype) -> PreActResNet18:
    model = trial.model
    return PreActResNet18(
        width=model.width,
        n_classes=n_outputs(trial),
        channel_multiple=model.channel_multiple,
        dtype=dtype,
    )


def _count(trial) -> int:
    model = trial.model
    return n_params(model.width, n_outputs(trial), trial.data.input_shape, model.channel_multiple)


def _activation_floats(trial) -> int:
    """About five maps per block: 10 k-channel maps at full size in stage 0, then each
    stage doubles the channels and quarters the positions."""
    positions = math.prod(trial.data.input_shape[:2])
    return int(10 * trial.model.width * positions * (1 + 0.5 + 0.25 + 0.125))


KIND = Family(
    config=ResNet18Model,
    build=_build,
    count=_count,
    activation_floats=_activation_floats,
    program_width=conv_program_width,
    rounded_width=conv_program_width,
    convolutional=lambda trial: True,
    block=_block,
    tiny=lambda: {"name": "resnet18", "width": 2},
)
