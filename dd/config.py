"""Typed trial configs: frozen dataclasses, every field validated (``dd.fields`` builds them).

A trial is ``Trial(seed, data, model, fit)``. ``data`` and ``model`` are tagged unions: the
``name`` key picks the dataclass, and each dataclass lists exactly the fields it accepts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from dd.errors import SpecError
from dd.fields import NO_OPTIONS, Bound, Options, bounded, describe, join, one_of

# --------------------------------------------------------------------------- data


@dataclass(frozen=True, kw_only=True)
class Data:
    """Fields every dataset shares. ``n_train`` examples are drawn per trial from a fixed pool."""

    name: str
    n_train: int = bounded(lo=1)
    n_test: int = bounded(lo=1)

    CLASSIFICATION: ClassVar[bool] = True
    VARIANTS: ClassVar[dict[str, type]]

    @property
    def pool_size(self) -> int:
        """How many training examples the fixed pool holds (``n_train`` must fit in it)."""
        raise NotImplementedError

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example."""
        raise NotImplementedError

    @property
    def input_dim(self) -> int:
        """The number of input coordinates of one example."""
        return math.prod(self.input_shape)

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return 10 if self.CLASSIFICATION else 0

    def neutral(self) -> Data:
        """This config with the values that vary per replica (travelling as arrays) fixed:
        what remains decides the data pool, the test set and the array shapes."""
        return dataclasses.replace(self, n_train=1)

    def check(self, path: str) -> None:
        if self.n_train > self.pool_size:
            raise SpecError(
                join(path, "n_train"),
                f"{self.n_train} is larger than the {self.name} training pool "
                f"of {self.pool_size} examples",
            )


@dataclass(frozen=True, kw_only=True)
class ClassificationData(Data):
    """A labelled dataset; ``label_noise`` p replaces a training label by a random other class."""

    label_noise: float = bounded(0.0, lo=0.0, hi=1.0, hi_open=True)

    def neutral(self) -> Data:
        return dataclasses.replace(super().neutral(), label_noise=0.0)


@dataclass(frozen=True, kw_only=True)
class Mnist1dData(ClassificationData):
    """MNIST-1D from the ``mnist1d`` procedural generator (Greydanus & Kobak), no download.

    The generator makes ``train_pool + n_test`` signals of length 40 with ``generator_seed``;
    the anchor setup is a 4000 / 12000 split.
    """

    name: str = "mnist1d"
    n_train: int = 4000
    n_test: int = 12000
    train_pool: int = bounded(4000, lo=10)
    generator_seed: int = 42

    @property
    def pool_size(self) -> int:
        return self.train_pool

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (40,)


DIGITS_TEST_SIZE = 597  # scikit-learn digits: 1797 images, a fixed third held out for test


@dataclass(frozen=True, kw_only=True)
class DigitsData(ClassificationData):
    """scikit-learn's bundled 8x8 digits (1797 images), split 1200 train pool / 597 test."""

    name: str = "digits"
    n_train: int = 1200
    n_test: int = DIGITS_TEST_SIZE

    @property
    def pool_size(self) -> int:
        return 1797 - DIGITS_TEST_SIZE

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (64,)

    def check(self, path: str) -> None:
        super().check(path)
        if self.n_test != DIGITS_TEST_SIZE:
            raise SpecError(
                join(path, "n_test"), f"digits has a fixed test split of {DIGITS_TEST_SIZE} images"
            )


@dataclass(frozen=True, kw_only=True)
class GaussianData(Data):
    """The linear teacher of the theory: x ~ N(0, I_dim), y = x . beta + noise.

    beta spreads ``beta_norm2`` evenly over the coordinates (beta_j^2 = beta_norm2 / dim), so a
    model that sees the first p coordinates misses ||beta_Tc||^2 = beta_norm2 (dim - p) / dim.
    Training rows are drawn per trial; the test set is fixed by ``test_seed``.

    ``slow_dim`` > 0 appends coordinates of scale ``slow_scale`` carrying signal energy
    ``slow_beta_norm2``: features that gradient descent learns slowly, the two-speed linear
    model of Heckel & Yilmaz 2020 whose risk shows epoch-wise double descent.
    """

    name: str = "gaussian"
    dim: int = bounded(200, lo=1)
    n_train: int = 100
    n_test: int = 10000
    beta_norm2: float = bounded(1.0, lo=0.0)
    noise_var: float = bounded(0.25, lo=0.0)
    test_seed: int = 0
    slow_dim: int = bounded(0, lo=0)
    slow_scale: float = bounded(1.0, lo=0, lo_open=True)
    slow_beta_norm2: float = bounded(0.0, lo=0.0)

    CLASSIFICATION: ClassVar[bool] = False

    @property
    def pool_size(self) -> int:
        return 10**9  # rows are drawn fresh per trial: no fixed pool limits n_train

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.dim + self.slow_dim,)


IMAGE_SHAPES = {  # name: (train pool, test set, (H, W, C)) of the published files
    "mnist": (60000, 10000, (28, 28, 1)),
    "fashion_mnist": (60000, 10000, (28, 28, 1)),
    "cifar10": (50000, 10000, (32, 32, 3)),
    "cifar100": (50000, 10000, (32, 32, 3)),
}


@dataclass(frozen=True, kw_only=True)
class ImageData(ClassificationData):
    """MNIST, Fashion-MNIST, CIFAR-10 or CIFAR-100 from local files (see ``dd.images``).

    ``data_dir`` (else $DD_DATA_DIR) holds the files in their published formats (a location,
    not part of trial ids: ``dd.ids``); ``augment`` turns on random crops (padding 4) and
    horizontal flips during training.
    """

    n_train: int = 50000
    n_test: int = 10000
    data_dir: str | None = dataclasses.field(default=None, metadata={"identity": "location"})
    augment: bool = False

    @property
    def pool_size(self) -> int:
        return IMAGE_SHAPES[self.name][0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return IMAGE_SHAPES[self.name][2]

    @property
    def n_classes(self) -> int:
        return 100 if self.name == "cifar100" else 10

    def check(self, path: str) -> None:
        super().check(path)
        if self.n_test > IMAGE_SHAPES[self.name][1]:
            raise SpecError(
                join(path, "n_test"),
                f"{self.n_test} is larger than the "
                f"{IMAGE_SHAPES[self.name][1]} test images of {self.name}",
            )


MODULAR_OPS = (
    "x+y",
    "x-y",
    "x/y",
    "x/y_if_y_odd_else_x-y",
    "x^2+y^2",
    "x^2+xy+y^2",
    "x^2+xy+y^2+x",
    "x^3+xy",
    "x^3+xy^2+y",
)


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


@dataclass(frozen=True, kw_only=True)
class ModularData(ClassificationData):
    """The algorithmic tasks of Power et al.: ``op`` over all pairs (x, y) of Z_p (``dd.modular``).

    A trial trains on ``train_fraction`` of the pairs (``n_train`` = round(fraction x pairs),
    drawn from its seed) and is tested on every other pair (``n_test``). Division leaves out
    y = 0. ``label_noise`` gives a training pair a random other answer (Doshi et al.'s
    corruption). ``key_share``: the key frequencies of the embedding are the fewest that hold
    this share of its squared Fourier norm (``dd.mechanistic``).
    """

    name: str = "modular"
    p: int = 97
    op: str = one_of("x+y", MODULAR_OPS)
    train_fraction: float = 0.3
    key_share: float = bounded(0.9, lo=0, lo_open=True, hi=1.0)
    n_train: int = dataclasses.field(init=False, default=0)
    n_test: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        n_train = round(self.train_fraction * self.pool_size)
        object.__setattr__(self, "n_train", n_train)
        object.__setattr__(self, "n_test", self.pool_size - n_train)

    @property
    def pool_size(self) -> int:
        return self.p * (self.p - 1) if self.op == "x/y" else self.p * self.p

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (2,)  # the tokens x and y

    @property
    def n_classes(self) -> int:
        return self.p

    def neutral(self) -> Data:
        return dataclasses.replace(self, train_fraction=0.5, label_noise=0.0)

    def check(self, path: str) -> None:
        if not _is_prime(self.p) or self.p < 3 or self.p > 2003:
            raise SpecError(join(path, "p"), f"must be an odd prime <= 2003 (got {self.p})")
        if not 0 < self.train_fraction < 1 or not 1 <= self.n_train < self.pool_size:
            raise SpecError(
                join(path, "train_fraction"),
                f"must leave at least one of the {self.pool_size} pairs for training "
                f"and one for test (got {self.train_fraction})",
            )
        super().check(path)


TASKS = ("auto", "classification", "regression")


@dataclass(frozen=True, kw_only=True)
class UserData(ClassificationData):
    """A user's own arrays: ``x_train``, ``y_train`` (the pool), ``x_test``, ``y_test``.

    ``task`` auto makes integer labels classification and float targets regression.
    ``classes`` fixes the class count (labels must lie in 0..classes-1); by default it is
    the largest label + 1. ``n_test`` (default: all) takes the first test examples. The arrays
    are loaded and checked (``dd.user_data``) when the config is built, so a bad file or
    loader stops the spec before anything runs; the properties below read them (cached).
    """

    n_train: int
    n_test: int | None = None
    task: str = one_of("auto", TASKS)
    classes: int | None = bounded(None, lo=2)

    def __post_init__(self) -> None:
        if self.n_test is None:  # every test example (an integer, as for every dataset)
            object.__setattr__(self, "n_test", self.summary.test_size)

    @property
    def summary(self) -> Any:
        from dd.user_data import summary

        return summary(self)

    @property
    def CLASSIFICATION(self) -> bool:
        return self.summary.n_classes > 0

    @property
    def n_classes(self) -> int:
        return self.summary.n_classes

    @property
    def pool_size(self) -> int:
        return self.summary.pool_size

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.summary.input_shape

    @property
    def integer_inputs(self) -> bool:
        """Integer inputs reach the model as int32 tokens; floats as float32."""
        return self.summary.integer_inputs

    def neutral(self) -> Data:
        return dataclasses.replace(self, n_train=1, label_noise=0.0)

    def check(self, path: str) -> None:
        summary = self.summary  # the arrays, loaded and checked (DataError on a bad file)
        if self.n_train > summary.pool_size:
            raise SpecError(
                join(path, "n_train"),
                f"{self.n_train} is larger than the "
                f"{summary.pool_size} examples of x_train in {summary.source}",
            )
        if self.n_test > summary.test_size:
            raise SpecError(
                join(path, "n_test"),
                f"{self.n_test} is larger than the "
                f"{summary.test_size} examples of x_test in {summary.source}",
            )
        if self.label_noise and not summary.n_classes:
            raise SpecError(
                join(path, "label_noise"),
                f"{summary.source} is a regression "
                "dataset (float targets); label noise needs class labels",
            )


@dataclass(frozen=True, kw_only=True)
class ArraysData(UserData):
    """Arrays from an ``.npz`` file at ``path`` (relative paths from the current directory);
    trial ids hash the file's bytes, not its path (``dd.ids``)."""

    name: str = "arrays"
    path: str = dataclasses.field(metadata={"identity": "content"})  # ids hash the file


@dataclass(frozen=True, kw_only=True)
class PythonData(UserData):
    """Arrays returned by ``loader`` ("package.module:function"), called with ``options``:
    a mapping with the keys x_train, y_train, x_test, y_test, or those four in a tuple."""

    name: str = "python"
    loader: str
    options: Options = NO_OPTIONS


IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def check_import_path(path: str, value: str) -> None:
    """A "package.module:name" that pack workers can import (not a notebook's __main__)."""
    if not IMPORT_PATH.match(value):
        raise SpecError(path, f"must be 'package.module:name' (got {describe(value)})")
    if value.startswith("__main__:"):
        raise SpecError(
            path,
            f"{value}: pack workers cannot import a notebook's or script's "
            "__main__; put it in a .py file on their PYTHONPATH",
        )


Data.VARIANTS = {
    c.name: c for c in (Mnist1dData, DigitsData, GaussianData, ModularData, ArraysData, PythonData)
}
Data.VARIANTS.update({name: ImageData for name in IMAGE_SHAPES})

# --------------------------------------------------------------------------- models


@dataclass(frozen=True, kw_only=True)
class Model:
    """Fields every model shares."""

    name: str
    VARIANTS: ClassVar[dict[str, type]]
    CLOSED_FORM: ClassVar[bool] = False

    def check(self, path: str) -> None:
        pass


@dataclass(frozen=True, kw_only=True)
class FeatureModel(Model):
    """A linear model on ``n_features`` features, fitted in closed form (see ``dd.closed_form``)."""

    n_features: int = bounded(lo=1)
    CLOSED_FORM: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class RawFeatures(FeatureModel):
    """The first ``n_features`` input coordinates: the weak-features model of the theory."""

    name: str = "raw_features"


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


@dataclass(frozen=True, kw_only=True)
class ReluFeatures(FeatureModel):
    """Random ReLU features: max(0, <w_k, x> + b_k), w_k ~ N(0, I/d), b_k ~ N(0, 1)."""

    name: str = "relu_features"


@dataclass(frozen=True, kw_only=True)
class NetworkModel(Model):
    """A Flax network trained by gradient descent (see ``dd.train``); ``width`` is its size knob."""

    width: int = bounded(lo=1)


ACTIVATIONS = ("relu", "quadratic")


@dataclass(frozen=True, kw_only=True)
class MlpModel(NetworkModel):
    """``depth`` hidden layers of ``width`` units (``dd.mlp``); depth 0 is a linear model.

    ``activation`` relu, or quadratic (h -> h^2, the modular-arithmetic MLP of Doshi et al.).
    On modular data the two tokens enter one-hot, concatenated.
    """

    name: str = "mlp"
    width: int = 100
    depth: int = bounded(2, lo=0, hi=64)
    activation: str = one_of("relu", ACTIVATIONS)


@dataclass(frozen=True, kw_only=True)
class CnnModel(NetworkModel):
    """Nakkiran et al.'s 5-layer CNN of widths k, 2k, 4k, 8k (``dd.cnn``), 1-D or 2-D inputs."""

    name: str = "cnn"
    width: int = 64


@dataclass(frozen=True, kw_only=True)
class ResNet18Model(NetworkModel):
    """PreActResNet18 with widths k, 2k, 4k, 8k (``dd.resnet``); k = 64 is the standard net."""

    name: str = "resnet18"
    width: int = 64


@dataclass(frozen=True, kw_only=True)
class TransformerModel(NetworkModel):
    """A decoder-only transformer on modular-arithmetic tokens (``dd.transformer``).

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

    def check(self, path: str) -> None:
        if self.width % self.heads:
            raise SpecError(
                join(path, "heads"), f"must divide width {self.width} (got {self.heads})"
            )


@dataclass(frozen=True, kw_only=True)
class FlaxModel(NetworkModel):
    """A user's own ``flax.linen`` module (``dd.user_model``): ``module`` is
    "package.module:Name", a Module class or a function returning a Module, built with
    ``width``, ``n_outputs`` (classes, or 1 for regression), the ``options`` as keywords, and
    ``dtype`` where it takes one. It is imported and test-run when the spec is loaded."""

    name: str = "flax"
    module: str
    options: Options = NO_OPTIONS

    def check(self, path: str) -> None:
        check_import_path(join(path, "module"), self.module)
        reserved = sorted(set(json.loads(self.options)) & {"width", "n_outputs", "dtype"})
        if reserved:
            raise SpecError(
                join(path, f"options.{reserved[0]}"),
                "dd passes width, n_outputs and dtype itself; set model.width, not an option",
            )


Model.VARIANTS = {
    c.name: c
    for c in (
        RawFeatures,
        FourierFeatures,
        PcaFourierFeatures,
        ReluFeatures,
        MlpModel,
        CnnModel,
        ResNet18Model,
        TransformerModel,
        FlaxModel,
    )
}

# --------------------------------------------------------------------------- fit / trial


@dataclass(frozen=True, kw_only=True)
class Fit:
    """Closed-form least squares. ``ridge`` 0 is the minimum-l2-norm solution.

    ``p_eff_inputs`` caps how many test inputs estimate the effective parameter count.
    """

    ridge: float = bounded(0.0, lo=0.0)
    p_eff_inputs: int = bounded(1000, lo=1)


OBJECTIVES = ("cross_entropy", "mse")
PRECISIONS = ("float32", "tf32", "bf16")  # see dd.precision
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "inverse_sqrt", "cosine")
EVAL_SPACINGS = ("log", "linear")


@dataclass(frozen=True, kw_only=True)
class Train:
    """Gradient-descent training of a network.

    ``optimizer``: sgd (heavy-ball ``momentum``; ``weight_decay`` added to the gradient, as in
    PyTorch), adam (the same coupled L2) or adamw (decoupled decay); Adam's betas ``b1``,
    ``b2``. The learning rate at step t is ``lr`` times the ``schedule``: constant;
    inverse_sqrt 1 / sqrt(1 + floor(t / schedule_steps)) (Nakkiran et al.'s SGD); cosine
    from 1 to 0 over the run; all multiplied by a linear warmup over ``warmup_steps``.
    ``objective``: the training loss, cross_entropy or mse on one-hot targets (squared
    errors summed over classes); its value is stored as train_loss / test_loss.
    ``batch_size`` "full" takes one step per epoch on all n_train examples (so ``epochs`` is
    the step budget, as in the grokking setups). Evaluation happens at ``eval_points`` epochs,
    log- or linearly spaced up to ``epochs`` (the last epoch always included).
    ``save_params`` stores each trial's final parameters (``dd.checkpoint.load_params``).
    ``precision``: float32 (exact float32 matrix products on every platform), tf32 (tensor-
    float-32 matrix products on GPUs) or bf16 (bfloat16 activations; parameters, optimizer
    state, normalisation statistics, logits and loss in float32); see ``dd.precision``.
    """

    optimizer: str = one_of("sgd", OPTIMIZERS)
    lr: float = bounded(0.01, lo=0, lo_open=True)
    momentum: float = bounded(0.0, lo=0.0, hi=1.0, hi_open=True)
    b1: float = bounded(0.9, lo=0.0, hi=1.0, hi_open=True)
    b2: float = bounded(0.999, lo=0.0, hi=1.0, hi_open=True)
    weight_decay: float = bounded(0.0, lo=0.0)
    schedule: str = one_of("constant", SCHEDULES)
    schedule_steps: int = bounded(512, lo=1)
    warmup_steps: int = bounded(0, lo=0)
    objective: str = one_of("cross_entropy", OBJECTIVES)
    batch_size: int | str = bounded(128, lo=1)  # or "full"
    epochs: int = bounded(100, lo=1)
    eval_points: int = bounded(20, lo=1)
    eval_spacing: str = one_of("log", EVAL_SPACINGS)
    save_params: bool = False
    precision: str = one_of("float32", PRECISIONS)

    def check(self, path: str) -> None:
        if isinstance(self.batch_size, str) and self.batch_size != "full":
            raise SpecError(
                join(path, "batch_size"),
                f"must be an integer >= 1 or 'full' (got {self.batch_size!r})",
            )


@dataclass(frozen=True, kw_only=True)
class Trial:
    """One fully resolved run: everything that decides its numbers, and nothing else.

    Closed-form models take ``fit`` (default ``Fit()``), networks ``train`` (default
    ``Train()``); giving the other section is an error.
    """

    seed: int = bounded(0, lo=0, hi=2**31 - 1)
    data: Data
    model: Model
    fit: Fit | None = None
    train: Train | None = None

    def __post_init__(self) -> None:
        if self.model.CLOSED_FORM:
            if self.train is not None:
                raise SpecError(
                    "train",
                    f"model {self.model.name} is fitted in closed form; "
                    "use a 'fit' section, not 'train'",
                )
            if self.fit is None:
                object.__setattr__(self, "fit", Fit())
        else:
            if self.fit is not None:
                raise SpecError(
                    "fit", f"model {self.model.name} is trained; use a 'train' section, not 'fit'"
                )
            if self.train is None:
                object.__setattr__(self, "train", Train())

    def check(self, path: str) -> None:
        if not self.model.CLOSED_FORM and not self.data.CLASSIFICATION:
            if self.train.objective != "mse":
                raise SpecError(
                    join(path, "train.objective"),
                    f"{self.data.name} is a regression dataset; use objective: mse",
                )
        if isinstance(self.model, ResNet18Model) and len(self.data.input_shape) != 3:
            raise SpecError(
                join(path, "model.name"),
                f"resnet18 needs images; {self.data.name} examples have shape "
                f"{self.data.input_shape}",
            )
        batch = self.train.batch_size if self.train is not None else "full"
        if batch != "full" and batch > self.data.n_train:
            raise SpecError(
                join(path, "train.batch_size"),
                f"{batch} is larger than n_train "
                f"{self.data.n_train}; use at most n_train, or 'full'",
            )
        tokens = isinstance(self.data, ModularData)
        if isinstance(self.model, TransformerModel) and not tokens:
            raise SpecError(
                join(path, "model.name"),
                f"transformer reads modular-arithmetic "
                f"tokens; {self.data.name} is not modular data",
            )
        if tokens and not isinstance(self.model, (MlpModel, TransformerModel)):
            raise SpecError(
                join(path, "model.name"),
                f"modular data takes an mlp or a transformer, not {self.model.name}",
            )
        if isinstance(self.model, PcaFourierFeatures) and isinstance(self.data, GaussianData):
            raise SpecError(
                join(path, "model.name"),
                "pca_fourier_features takes its principal "
                "axes from a training pool; gaussian data has none",
            )
        if (
            isinstance(self.model, PcaFourierFeatures)
            and self.model.pca_components > self.data.input_dim
        ):
            raise SpecError(
                join(path, "model.pca_components"),
                f"{self.model.pca_components} exceeds the {self.data.input_dim} "
                f"input coordinates of {self.data.name}",
            )
        if isinstance(self.model, FlaxModel):
            from dd.user_model import probe

            probe(self, join(path, "model.module"))
        if isinstance(self.model, RawFeatures) and self.model.n_features > self.data.input_dim:
            raise SpecError(
                join(path, "model.n_features"),
                f"{self.model.n_features} exceeds the {self.data.input_dim} input "
                f"coordinates of {self.data.name}",
            )
