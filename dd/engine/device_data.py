"""The engine's data on the device: one typed pytree per dataset, and each replica's draws.

``DeviceData`` carries a dataset's arrays into every compiled program (trained and closed
form alike); ``training_rows`` draws a replica's training set from its key inside them.
Array names end in their shape, one meaning per letter (nanodo's habit):

    P  rows of the training pool (for modular data, every pair of the table)
    N  rows of one replica's training set, padded to the pack's largest n_train
    B  rows of one training batch
    C  test chunks, T rows per chunk (evaluation memory is bounded by one chunk)
    D  one example's input: its coordinates, or its (H, W, channels) image, or its tokens
    S  input channels (per-channel image statistics)
    K  outputs: classes, or 1 for regression
    F  functions of the Fourier basis of Z_p (modular data)
    R  replicas of a pack
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dd.datasets.base import Dataset
from dd.datasets.registry import kind_of
from dd.engine.data import test_chunks
from dd.models.precision import floating
from dd.models.rng import named, trial_key
from dd.spec.config import Data


@struct.dataclass
class DeviceData:
    """A dataset's arrays as one pytree. Optional parts are None where they do not apply."""

    x_pool_PD: jax.Array | None  # pool inputs: float rows, uint8 images or int tokens;
    #                              None for Gaussian data, whose rows are drawn per trial
    y_pool_P: jax.Array | None  # pool labels (ints) or targets (floats)
    x_test_CTD: jax.Array | None  # test inputs in chunks (None for modular data: its test
    y_test_CT: jax.Array | None  #   set is the rest of the table, evaluated from the pool)
    mask_test_CT: jax.Array | None  # 1 for real test rows, 0 for the padding of the last chunk
    x_mean_S: jax.Array | None = None  # per-channel statistics of uint8 image pools
    x_std_S: jax.Array | None = None
    beta_D: jax.Array | None = None  # Gaussian teacher, in input coordinates
    scale_D: jax.Array | None = None  # each Gaussian input coordinate's standard deviation
    noise_var: jax.Array | None = None  # Gaussian label-noise variance
    fourier_basis_FP: jax.Array | None = None  # modular: the real Fourier basis of Z_p
    #                                          (read by dd.models.measures.mechanistic)
    sum_directions_PF: jax.Array | None = None  # modular x+y, x-y: directions of x +- y
    n_classes: int = struct.field(pytree_node=False, default=0)  # 0 for regression


def to_device(dataset: Dataset, data: Data, chunk: int) -> DeviceData:
    """The device form of ``dataset`` (``data`` is its config), test rows in ``chunk``s."""

    wide = floating() == np.float64  # in a float64 pack's scope: float arrays as float64

    def put(array):  # a transfer, not a program (jnp.asarray compiles a copy)
        if array is None:
            return None
        if wide and np.asarray(array).dtype.kind == "f":
            array = np.asarray(array, np.float64)
        return jax.device_put(array)

    extra = kind_of(data).device_arrays(dataset, data)  # may replace the tests by None
    tests = {} if "x_test_CTD" in extra else test_chunks(dataset, chunk)
    noise = None if dataset.beta is None else put(np.float32(dataset.noise_var))
    return DeviceData(
        x_pool_PD=put(dataset.x_pool),
        y_pool_P=put(dataset.y_pool),
        x_mean_S=put(dataset.x_mean),
        x_std_S=put(dataset.x_std),
        beta_D=put(dataset.beta),
        scale_D=put(dataset.scale),
        noise_var=noise,
        n_classes=dataset.n_classes,
        **{k: put(v) for k, v in tests.items()},
        **{k: put(v) for k, v in extra.items()},
    )


def prepare_inputs(x: jax.Array, mean_S: jax.Array | None, std_S: jax.Array | None) -> jax.Array:
    """Model-ready inputs: uint8 images scaled to [0, 1] and standardised per channel, other
    float inputs as float32 (float64 in a float64 pack); integer tokens (modular arithmetic)
    stay integers."""
    if jnp.issubdtype(x.dtype, jnp.integer) and mean_S is None:
        return x
    if mean_S is None:
        return x.astype(floating())
    return (x.astype(floating()) / 255.0 - mean_S) / std_S


def noisy_labels(
    key: jax.Array, y_P: jax.Array, n_classes: int, rate: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Replace each label with prob. ``rate`` by a uniformly random *different* class.

    Drawn over the whole pool, so the noise an example gets does not depend on n_train.
    Returns (labels, noised mask).
    """
    k_flip, k_offset = jax.random.split(key)
    noised_P = jax.random.uniform(k_flip, y_P.shape) < rate
    offset_P = jax.random.randint(k_offset, y_P.shape, 1, n_classes, jnp.int32)
    return jnp.where(noised_P, (y_P + offset_P) % n_classes, y_P), noised_P


def training_rows(
    key: jax.Array, data: DeviceData, n_rows: int, n_train: jax.Array, label_noise: jax.Array
) -> dict[str, jax.Array]:
    """The first ``n_rows`` training examples of a trial, rows past ``n_train`` masked out.

    ``index`` gives each row's place in the pool, so a caller can gather inputs lazily
    (under jit an unused ``x`` costs nothing).

    The example order is a per-trial permutation of the pool (or, for Gaussian data, rows
    drawn one key per row), so the first n_train rows are the same whatever ``n_rows`` is.
    """
    mask_N = jnp.arange(n_rows) < n_train
    if data.x_pool_PD is None:
        beta_D, scale_D = data.beta_D, data.scale_D

        def row(i):
            k_x, k_e = jax.random.split(jax.random.fold_in(named(key, "rows"), i))
            x_D = jax.random.normal(k_x, beta_D.shape, beta_D.dtype) * scale_D
            noise = jnp.sqrt(data.noise_var).astype(beta_D.dtype)
            return x_D, x_D @ beta_D + noise * jax.random.normal(k_e, (), beta_D.dtype)

        x_ND, y_N = jax.vmap(row)(jnp.arange(n_rows))
        return {
            "x": x_ND,
            "y": y_N,
            "y_true": y_N,
            "noised": jnp.zeros(n_rows, bool),
            "mask": mask_N,
            "index": jnp.arange(n_rows),
        }
    pool = data.y_pool_P.shape[0]
    order_N = jax.random.permutation(named(key, "subset"), pool)[:n_rows]
    y_P, noised_P = noisy_labels(
        named(key, "label_noise"), data.y_pool_P, data.n_classes, label_noise
    )
    return {
        "x": data.x_pool_PD[order_N],
        "y": y_P[order_N],
        "y_true": data.y_pool_P[order_N],
        "noised": noised_P[order_N] & mask_N,
        "mask": mask_N,
        "index": order_N,
    }


class Setup(NamedTuple):
    """A replica's fixed inputs: its key, its training rows and its hyperparameters (every
    leaf gains a leading R axis in a pack)."""

    key: jax.Array
    index_N: jax.Array  # pool row of each training example, in the trial's order
    x_ND: jax.Array  # the rows themselves, only for Gaussian data (drawn, not indexed)
    y_N: jax.Array  # training labels (noised)
    y_true_N: jax.Array
    noised_N: jax.Array
    mask_N: jax.Array  # rows past the replica's n_train are padding
    n_train: jax.Array
    lr: jax.Array
    weight_decay: jax.Array
    grokfast_alpha: jax.Array
    grokfast_lamb: jax.Array
    # the network's initial parameters and its output times these (model.init_scale,
    # model.output_scale); None where the program does not scale: no input the program
    # does not read (an unread input already moves XLA CPU's float32 results by an ulp)
    init_scale: jax.Array | None = None
    output_scale: jax.Array | None = None
    # the perpendicular gradient's on/off (1.0 / 0.0); None where the program has no transform
    orthogonal_grad: jax.Array | None = None


@functools.partial(jax.jit, static_argnames=("n_rows",))
def draw_setups(
    data: DeviceData,
    seeds_R,
    n_train_R,
    noise_R,
    lr_R,
    weight_decay_R,
    *,
    n_rows: int,
    grokfast_alpha_R=None,
    grokfast_lamb_R=None,
    init_scale_R=None,
    output_scale_R=None,
    orthogonal_grad_R=None,
) -> Setup:
    """Each replica's key, training rows and labels, drawn from its seed (the Grokfast
    filter's per-replica values default to 0: a program without the filter reads none; the
    model's scales and the perpendicular gradient's on/off to None: a program that does not
    scale, or has no transform, reads none)."""

    def one(seed, n, rate):
        key = trial_key(seed)
        rows = training_rows(key, data, n_rows, n, rate)
        x_ND = rows["x"] if data.x_pool_PD is None else jnp.zeros((n_rows, 0))
        return (
            key,
            rows["index"],
            x_ND.astype(floating()),
            rows["y"],
            rows["y_true"],
            rows["noised"],
            rows["mask"],
        )

    drawn = jax.vmap(one)(seeds_R, n_train_R, noise_R)
    zeros = jnp.zeros(jnp.shape(lr_R), floating())
    return Setup(
        *drawn,
        n_train=n_train_R,
        lr=lr_R,
        weight_decay=weight_decay_R,
        grokfast_alpha=zeros if grokfast_alpha_R is None else grokfast_alpha_R,
        grokfast_lamb=zeros if grokfast_lamb_R is None else grokfast_lamb_R,
        init_scale=init_scale_R,
        output_scale=output_scale_R,
        orthogonal_grad=orthogonal_grad_R,
    )
