"""Fully connected network: the model of the MNIST-1D double-descent anchor, and the
modular-arithmetic MLP of Doshi et al. (quadratic activation, one-hot token inputs).

Greydanus & Kobak's MNIST-1D setup trains ``40 -> H -> H -> 10`` (``depth=2``) and sweeps the
hidden width H. With layer sizes ``d_0 = n_inputs``, ``d_1 = ... = d_depth = width`` and
``d_{depth+1} = n_classes``:

    h_0 = flatten(x),   h_l = act(W_l h_{l-1} + b_l)  (l = 1..depth),   act = relu or (.)^2,
    logits = W_{depth+1} h_depth + b_{depth+1}.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


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
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (n_tokens * self.vocab, self.features), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,),
                          self.param_dtype)
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
                dense = OneHotDense(self.width, self.vocab, param_dtype=self.param_dtype,
                                    name="hidden_0")
            else:
                dense = nn.Dense(self.width, dtype=self.dtype, param_dtype=self.param_dtype,
                                 name=f"hidden_{layer}")
            h_BxD = dense(h_BxD)
            h_BxD = h_BxD * h_BxD if self.activation == "quadratic" else nn.relu(h_BxD)
        return nn.Dense(
            self.n_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="logits"
        )(h_BxD)


MIN_PROGRAM_WIDTH = 64  # narrower MLPs train inside one program of this width


def program_width(width: int, depth: int) -> int:
    """The hidden width an MLP's program is compiled for: at least ``MIN_PROGRAM_WIDTH``.

    Compiling costs seconds per program while a narrow MLP's training costs little, so the
    narrow widths of a sweep share one program (see ``narrow``) instead of compiling one
    each. Depth 0 has no hidden layer to widen.
    """
    return max(width, MIN_PROGRAM_WIDTH) if depth else width


def narrow(params: dict, width: jax.Array, wide: int) -> dict:
    """A width-``width`` MLP's initial parameters inside a program of hidden width ``wide``.

    Units past ``width`` get zero weights in and out and zero biases. ``act(0) = 0`` and no
    gradient reaches them (their outgoing weights are zero, and so is every update built from
    a zero gradient, weight decay included), so they stay zero and the network computes what
    a width-``width`` MLP does. Kernels that read a hidden layer are drawn for fan-in
    ``wide``; multiplying by sqrt(wide / width) gives lecun_normal's variance 1 / width.
    """
    live = (jnp.arange(wide) < width).astype(jnp.float32)
    scale = jnp.sqrt(wide / width.astype(jnp.float32))
    out = {}
    for name, layer in params.items():
        kernel, bias = layer["kernel"], layer["bias"]
        if name != "hidden_0":  # reads a hidden layer
            kernel = kernel * (live * scale)[:, None]
        if name != "logits":  # writes a hidden layer
            kernel, bias = kernel * live, bias * live
        out[name] = {"kernel": kernel, "bias": bias}
    return out


def unpad(params: dict, width: int) -> dict:
    """The parameters of the width-``width`` MLP that ``narrow`` placed in a wider program."""
    out = {}
    for name, layer in params.items():
        kernel = layer["kernel"] if name == "hidden_0" else layer["kernel"][:width]
        if name == "logits":
            out[name] = {"kernel": kernel, "bias": layer["bias"]}
        else:
            out[name] = {"kernel": kernel[:, :width], "bias": layer["bias"][:width]}
    return out


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
