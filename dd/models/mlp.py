"""Fully connected network: the model of the MNIST-1D double-descent anchor, and the
modular-arithmetic MLP of Doshi et al. (quadratic activation, one-hot token inputs).

Greydanus & Kobak's MNIST-1D setup trains ``40 -> H -> H -> 10`` (``depth=2``) and sweeps the
hidden width H. With layer sizes ``d_0 = n_inputs``, ``d_1 = ... = d_depth = width`` and
``d_{depth+1} = n_classes``:

    h_0 = flatten(x),   h_l = act(W_l h_{l-1} + b_l)  (l = 1..depth),   act = relu or (.)^2,
    logits = W_{depth+1} h_depth + b_{depth+1}.
"""

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dd.models.base import Family, NetworkModel, ladder_width, n_outputs
from dd.spec.fields import bounded, one_of

ACTIVATIONS = ("relu", "quadratic")


@dataclass(frozen=True, kw_only=True)
class MlpModel(NetworkModel):
    """``depth`` hidden layers of ``width`` units (this module); depth 0 is a linear model.

    ``activation`` relu, or quadratic (h -> h^2, the modular-arithmetic MLP of Doshi et al.).
    On modular data the two tokens enter one-hot, concatenated.
    """

    name: str = "mlp"
    width: int = 100
    depth: int = bounded(2, lo=0, hi=64)
    activation: str = one_of("relu", ACTIVATIONS)

    READS_TOKENS: ClassVar[bool] = True  # one-hot, concatenated


class OneHotDense(nn.Module):
    """A Dense layer on one-hot tokens, computed by gathering kernel rows instead of a matmul.

    Its parameters are those of ``nn.Dense`` on the concatenated one-hot vectors (kernel
    (T * vocab, features), same initializer), and so are its outputs; only the cost differs.
    """

    features: int
    vocab: int
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, tokens_BT: jnp.ndarray) -> jnp.ndarray:
        n_tokens = tokens_BT.shape[-1]
        kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(),
            (n_tokens * self.vocab, self.features),
            self.param_dtype,
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), self.param_dtype)
        rows_BT = tokens_BT + self.vocab * jnp.arange(n_tokens)
        return jnp.sum(kernel[rows_BT], axis=-2) + bias


class MLP(nn.Module):
    """``depth`` hidden Dense+ReLU layers of ``width`` units, then a Dense to ``n_classes``.

    Input ``x`` is ``(N, ...)``: every axis after the batch axis is flattened into features.
    With ``vocab`` > 0, ``x`` holds integer tokens, each entering as a one-hot vector.
    ``__call__`` takes ``train`` only to share the signature of the other families; it has no
    effect here (no dropout, no normalisation).
    """

    width: int
    depth: int
    n_classes: int
    activation: str = "relu"
    vocab: int = 0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if self.vocab and self.depth == 0:  # integer tokens: one-hot each, concatenated
            x = jax.nn.one_hot(x, self.vocab, dtype=self.dtype)
        h_BxD = x.reshape(x.shape[0], -1)
        for layer in range(self.depth):
            if layer == 0 and self.vocab:
                dense = OneHotDense(
                    self.width, self.vocab, param_dtype=self.param_dtype, name="hidden_0"
                )
            else:
                dense = nn.Dense(
                    self.width,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    name=f"hidden_{layer}",
                )
            h_BxD = dense(h_BxD)
            h_BxD = h_BxD * h_BxD if self.activation == "quadratic" else nn.relu(h_BxD)
        return nn.Dense(
            self.n_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="logits"
        )(h_BxD)


MIN_PROGRAM_WIDTH = 64  # narrower MLPs train inside one program of this width
RUNGS_PER_OCTAVE = 8  # wider ones in the next rung: at most 12.5% wider, 8 programs an octave


def program_width(trial) -> int:
    """The hidden width an MLP's program is compiled for: the trial's rung of a fixed ladder
    (``ladder_width``: 64, then 8 rungs an octave), a function of the trial alone.

    Compiling costs seconds per program while a narrow MLP's training costs little, so the
    narrow widths share one program (``dd.engine.padding``) instead of compiling one each;
    and a trial runs in the same program whatever sweep holds it, so it rounds alike
    (docs/design.md, "Packs"). Depth 0 has no hidden layer to widen.
    """
    width, depth = trial.model.width, trial.model.depth
    return (
        ladder_width(width, floor=MIN_PROGRAM_WIDTH, per_octave=RUNGS_PER_OCTAVE)
        if depth
        else width
    )


def n_params(width: int, depth: int, n_classes: int, input_shape: tuple[int, ...]) -> int:
    """Number of trainable parameters of ``MLP(width, depth, n_classes)``.

    ``input_shape`` is one example's shape (no batch axis); D = prod(input_shape) (for token
    inputs, tokens x vocab). Each Dense
    ``a -> b`` holds ``(a + 1) * b`` numbers, so for depth >= 1

        (D + 1) W + (depth - 1)(W + 1) W + (W + 1) C,

    and ``(D + 1) C`` for depth 0 (multinomial logistic regression).
    """
    n_inputs = math.prod(input_shape)
    if depth == 0:
        return (n_inputs + 1) * n_classes
    return (n_inputs + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * n_classes


def _build(trial, dtype) -> MLP:
    model = trial.model
    return MLP(
        width=model.width,
        depth=model.depth,
        n_classes=n_outputs(trial),
        activation=model.activation,
        vocab=trial.data.vocab,
        dtype=dtype,
    )


def _count(trial) -> int:
    vocab = trial.data.vocab
    return n_params(
        trial.model.width,
        trial.model.depth,
        n_outputs(trial),
        trial.data.input_shape + ((vocab,) if vocab else ()),
    )


def _activation_floats(trial) -> int:
    return trial.model.width * max(trial.model.depth, 1) + 2 * trial.data.vocab


def input_embedding(params, vocab: int):
    """(E_x, E_y): the two halves of the first layer's kernel on one-hot tokens (``hidden_0``,
    or ``logits`` at depth 0)."""
    kernel = params["hidden_0" if "hidden_0" in params else "logits"]["kernel"]
    return kernel[:vocab], kernel[vocab : 2 * vocab]


KIND = Family(
    config=MlpModel,
    build=_build,
    count=_count,
    activation_floats=_activation_floats,
    program_width=program_width,
    input_embedding=input_embedding,
    tiny=lambda: {"name": "mlp", "width": 8, "depth": 1},
)
