"""Typed trial configs: frozen dataclasses, every field validated (``dd.spec.fields`` builds them).

A trial is ``Trial(seed, data, model, fit | train)``. ``data`` and ``model`` are tagged unions:
the ``name`` key picks the dataclass from ``Data.VARIANTS`` / ``Model.VARIANTS``, which the kind
registries fill when loaded (``dd.datasets.registry.load``, ``dd.models.registry.load``); each
kind's module holds its config class. Config objects are plain values: no file is read, no
user code imported and no JAX traced here. What a dataset is like (``DataFacts``) is arithmetic
on the fields for the built-in kinds; a user's arrays are described by the resolve stage
(``dd.plan.resolve``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

from dd.spec.errors import DDError, SpecError
from dd.spec.fields import bounded, join, one_of


@dataclass(frozen=True)
class DataFacts:
    """What the engine and the model kinds need to know of a dataset."""

    input_shape: tuple[int, ...]  # one example
    n_classes: int  # 0: regression
    pool_size: int  # training examples n_train is drawn from
    test_size: int  # test examples evaluated
    integer_inputs: bool = False  # inputs reach the model as int32 tokens
    source: str = ""  # the file or loader, for messages


@dataclass(frozen=True, kw_only=True)
class Data:
    """Fields every dataset shares. ``n_train`` examples are drawn per trial from a fixed pool.

    Class flags a kind may set: ``CLASSIFICATION`` (labels, not targets) and ``FIXED_POOL``
    (examples come from a stored pool; False where rows are drawn fresh per trial).
    ``measures()``: the per-evaluation measures the kind adds to every trained trial's rows,
    by registered name (``dd.models.measures``; modular data: the progress measures).
    """

    name: str
    n_train: int = bounded(lo=1)
    n_test: int = bounded(lo=1)

    CLASSIFICATION: ClassVar[bool] = True
    FIXED_POOL: ClassVar[bool] = True
    VARIANTS: ClassVar[dict[str, type]] = {}  # name -> config class (dd.datasets.registry)

    @property
    def facts(self) -> DataFacts | None:
        """The dataset's facts, or None where only reading the data can tell (resolve stage)."""
        return DataFacts(
            input_shape=self.input_shape,
            n_classes=self.n_classes,
            pool_size=self.pool_size,
            test_size=self.n_test,
            integer_inputs=self.integer_inputs,
        )

    def known_facts(self) -> DataFacts:
        """``facts``, which must be known: a DDError for user data not yet resolved."""
        facts = self.facts
        if facts is None:
            raise DDError(
                f"data {self.name}: its arrays have not been described yet; "
                "dd.plan.resolve.resolve_trials reads them"
            )
        return facts

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

    @property
    def test_size(self) -> int:
        """How many test examples a trial is evaluated on."""
        return self.n_test

    @property
    def integer_inputs(self) -> bool:
        """Integer inputs reach the model as int32 tokens; floats as float32."""
        return False

    @property
    def vocab(self) -> int:
        """The token vocabulary of token inputs that dd's own models embed (0: none)."""
        return 0

    def measures(self) -> tuple[str, ...]:
        """The registered measures (``dd.models.measures``) this data adds to an evaluation."""
        return ()

    def neutral(self) -> Data:
        """This config with the values that vary per replica (travelling as arrays) fixed:
        what remains decides the data pool, the test set and the array shapes."""
        return dataclasses.replace(self, n_train=1)

    def check(self, path: str) -> None:
        if self.facts is not None and self.n_train > self.pool_size:
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
class Model:
    """Fields every model shares. ``SECTION``: the trial section that says how it is run,
    ``train`` (gradient descent, ``Train``) or ``fit`` (closed form, ``Fit``); it names the
    runner that plans and runs its packs (``dd.plan.runners``). ``READS_TOKENS``: it embeds
    token inputs itself (the only models token data takes)."""

    name: str
    VARIANTS: ClassVar[dict[str, type]] = {}  # name -> config class (dd.models.registry)
    SECTION: ClassVar[str] = "train"
    READS_TOKENS: ClassVar[bool] = False

    def check(self, path: str) -> None:
        pass

    def check_data(self, data: Data, path: str) -> None:
        """Whether this model can take ``data`` (its facts known); ``path``: the trial's."""
        if data.vocab and not self.READS_TOKENS:
            readers = sorted(n for n, c in self.VARIANTS.items() if c.READS_TOKENS)
            raise SpecError(
                join(path, "model.name"),
                f"{data.name} data takes {' or '.join(readers)}, not {self.name}",
            )


# --------------------------------------------------------------------------- fit / train / trial


@dataclass(frozen=True, kw_only=True)
class Fit:
    """Closed-form least squares. ``ridge`` 0 is the minimum-l2-norm solution.

    ``p_eff_inputs`` caps how many test inputs estimate the effective parameter count.
    """

    ridge: float = bounded(0.0, lo=0.0)
    p_eff_inputs: int = bounded(1000, lo=1)


OBJECTIVES = ("cross_entropy", "mse", "stablemax")
PRECISIONS = ("float32", "tf32", "bf16", "float64")  # see dd.models.precision
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "inverse_sqrt", "cosine")
EVAL_SPACINGS = ("log", "linear")


@dataclass(frozen=True, kw_only=True)
class EvalExtra:
    """Extra evaluations beside the ``eval_points`` schedule: ``points`` epochs from ``start``
    to ``stop`` (both included), ``linear`` or ``log`` spaced, so that a window where the
    curves move (a grokking jump) is sampled densely. ``start`` and ``stop`` 0 (the
    default): no window."""

    start: int = bounded(0, lo=0)
    stop: int = bounded(0, lo=0)
    points: int = bounded(20, lo=1)
    spacing: str = one_of("linear", EVAL_SPACINGS)

    @property
    def on(self) -> bool:
        return bool(self.start or self.stop)

    def check(self, path: str) -> None:
        if not self.on:
            if self != EvalExtra():
                raise SpecError(join(path, "stop"), "must be set (with start) for a window")
            return
        if self.start < 1:
            raise SpecError(join(path, "start"), f"must be >= 1 (got {self.start})")
        if self.stop < self.start:
            raise SpecError(join(path, "stop"), f"must be >= start {self.start} (got {self.stop})")


@dataclass(frozen=True, kw_only=True)
class Train:
    """Gradient-descent training of a network.

    ``optimizer``: sgd (heavy-ball ``momentum``; ``weight_decay`` added to the gradient, as in
    PyTorch), adam (the same coupled L2) or adamw (decoupled decay); Adam's betas ``b1``,
    ``b2`` and epsilon ``eps`` (optax's default 1e-8; Prieto et al. 2025 use 1e-25).
    ``orthogonal_grad``: the perpendicular gradient of Prieto et al. 2025 ("Grokking at the
    edge of numerical stability"): each tensor's gradient g becomes g - (w.g / w.w) w,
    rescaled to the norm of g, before the optimizer sees it (``dd.engine.optim``); a
    per-replica on/off: on and off trials share a pack, whose program has the transform where
    one of them has it on, and an off replica's rows are those of no transform, bit for bit.
    ``grokfast``: the Grokfast EMA gradient filter of Lee et al. 2024 (github ironjr/grokfast)
    is part of the program: h <- alpha h + (1 - alpha) g (h starts at the first gradient),
    and the optimizer sees g + lamb h, with per-replica ``grokfast_alpha`` and
    ``grokfast_lamb`` (0 = off), so one pack sweeps them. ``grokfast`` itself only adds the
    filter's params-shaped state to the program: at lamb 0 a replica's rows equal those of no
    filter to float32 rounding (the program fuses differently; not bit for bit), so like
    ``measures`` it is left out of ids and columns; a nonzero ``grokfast_lamb`` needs it.
    ``grokfast_window`` > 0 swaps the EMA for Lee et al.'s Grokfast-MA (their
    ``gradfilter_ma``, warmup on): the mean of the last ``window`` gradients (the current one
    included), added times lamb once the window is full; the state holds ``window`` copies
    of the parameters, so it is a program setting (its own packs; in ids and columns unless 0,
    the EMA).
    The learning rate at step t is ``lr`` times the ``schedule``: constant; inverse_sqrt
    1 / sqrt(1 + floor(t / schedule_steps)) (Nakkiran et al.'s SGD); cosine from 1 to 0
    over the run; all multiplied by a linear warmup over ``warmup_steps``.
    ``objective``: the training loss, cross_entropy or mse on one-hot targets (squared
    errors summed over classes) or stablemax (Prieto et al. 2025's StableMax
    cross-entropy: s(x) = x + 1 for x >= 0, 1 / (1 - x) below, p_i = s(z_i) / sum_j s(z_j),
    loss -log p_y; it does not saturate where float32 softmax rounds p_y to 1); its value
    is stored as train_loss / test_loss.
    ``batch_size`` "full" takes one step per epoch on all n_train examples (so ``epochs`` is
    the step budget, as in the grokking setups). Evaluation happens at ``eval_points`` epochs,
    log- or linearly spaced up to ``epochs`` (the last epoch always included), and at the
    ``eval_extra`` window's epochs (``EvalExtra``; none by default, which leaves ids as
    they were). A grokking time is only known to lie between two evaluations: a denser
    window where the curves jump narrows it (``dd.analysis.curves.grok_times``).
    ``save_params`` stores each trial's final parameters (``dd.engine.checkpoint.load_params``).
    ``measures``: extra per-evaluation measures, registered names separated by commas
    (``dd.models.measures``, e.g. ``layer_norms``), computed beside those the data kind adds;
    like a program setting it is left out of trial ids and config columns (it changes no
    other number: a stored trial is not re-run for it).
    ``precision``: float32 (exact float32 matrix products on every platform), tf32 (tensor-
    float-32 matrix products on GPUs), bf16 (bfloat16 activations; parameters, optimizer
    state, normalisation statistics, logits and loss in float32) or float64 (everything in
    float64, JAX's x64 scoped to the pack: Prieto et al. 2025); see ``dd.models.precision``.
    """

    optimizer: str = one_of("sgd", OPTIMIZERS)
    lr: float = bounded(0.01, lo=0, lo_open=True)
    momentum: float = bounded(0.0, lo=0.0, hi=1.0, hi_open=True)
    b1: float = bounded(0.9, lo=0.0, hi=1.0, hi_open=True)
    b2: float = bounded(0.999, lo=0.0, hi=1.0, hi_open=True)
    eps: float = bounded(1e-8, lo=0.0, lo_open=True)
    weight_decay: float = bounded(0.0, lo=0.0)
    orthogonal_grad: bool = False
    grokfast: bool = dataclasses.field(default=False, metadata={"identity": "program"})
    grokfast_alpha: float = bounded(0.98, lo=0.0, hi=1.0, hi_open=True)
    grokfast_lamb: float = bounded(0.0, lo=0.0)
    grokfast_window: int = bounded(0, lo=0)
    schedule: str = one_of("constant", SCHEDULES)
    schedule_steps: int = bounded(512, lo=1)
    warmup_steps: int = bounded(0, lo=0)
    objective: str = one_of("cross_entropy", OBJECTIVES)
    batch_size: int | str = bounded(128, lo=1)  # or "full"
    epochs: int = bounded(100, lo=1)
    eval_points: int = bounded(20, lo=1)
    eval_spacing: str = one_of("log", EVAL_SPACINGS)
    eval_extra: EvalExtra = EvalExtra()
    save_params: bool = False
    precision: str = one_of("float32", PRECISIONS)
    measures: str = dataclasses.field(default="", metadata={"identity": "program"})

    def check(self, path: str) -> None:
        if isinstance(self.batch_size, str) and self.batch_size != "full":
            raise SpecError(
                join(path, "batch_size"),
                f"must be an integer >= 1 or 'full' (got {self.batch_size!r})",
            )
        if self.grokfast_lamb and not self.grokfast:
            raise SpecError(
                join(path, "grokfast_lamb"),
                f"is {self.grokfast_lamb} but the filter is off: set train.grokfast: true",
            )
        if self.grokfast_window and not self.grokfast:
            raise SpecError(
                join(path, "grokfast_window"),
                f"is {self.grokfast_window} but the filter is off: set train.grokfast: true",
            )
        if self.grokfast_window and self.grokfast_alpha != 0.98:
            raise SpecError(
                join(path, "grokfast_alpha"),
                "is the EMA filter's; grokfast_window > 0 takes a moving average instead",
            )
        if self.eval_extra.stop > self.epochs:
            raise SpecError(
                join(path, "eval_extra.stop"),
                f"must be <= epochs {self.epochs} (got {self.eval_extra.stop})",
            )
        if self.optimizer == "sgd" and self.eps != 1e-8:
            raise SpecError(join(path, "eps"), "is Adam's epsilon: needs optimizer adam or adamw")


# The sections a model's ``SECTION`` names: its config class and how the model is run.
SECTIONS: dict[str, tuple[type, str]] = {
    "train": (Train, "trained"),
    "fit": (Fit, "fitted in closed form"),
}


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
        section = self.model.SECTION
        other = next(s for s in SECTIONS if s != section)
        if getattr(self, other) is not None:
            raise SpecError(
                other,
                f"model {self.model.name} is {SECTIONS[section][1]}; "
                f"use a '{section}' section, not '{other}'",
            )
        if getattr(self, section) is None:
            object.__setattr__(self, section, SECTIONS[section][0]())

    def check(self, path: str) -> None:
        batch = self.train.batch_size if self.train is not None else "full"
        if batch != "full" and batch > self.data.n_train:
            raise SpecError(
                join(path, "train.batch_size"),
                f"{batch} is larger than n_train "
                f"{self.data.n_train}; use at most n_train, or 'full'",
            )
        if self.data.facts is not None:  # else the resolve stage checks, once it knows them
            self.check_facts(path)

    def check_facts(self, path: str) -> None:
        """What needs the data's facts: the objective of a regression, and the model's own
        compatibility check (``Model.check_data``)."""
        if self.train is not None and not self.data.known_facts().n_classes:
            if self.train.objective != "mse":
                raise SpecError(
                    join(path, "train.objective"),
                    f"{self.data.name} is a regression dataset; use objective: mse",
                )
        self.model.check_data(self.data, path)
