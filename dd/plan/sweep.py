"""Sweep specs: a YAML file -> a validated, frozen ``Spec`` holding every trial of its grid
(a lazy sequence, ``dd.spec.expand.GridTrials``).

A spec file has a base trial (``seed``, ``data``, ``model``, ``fit``), a ``grid`` of axes
addressed by dotted path (``dd.spec.grid``), and the sweep-level sections
``resources`` and ``curves``::

    name: rff_mnist1d
    data: {name: mnist1d, n_train: 1000}
    model: {name: fourier_features, n_features: 10}
    grid:
      model.n_features: {geomspace: [10, 10000, 40]}
      seed: {range: [0, 3]}
      zip:                        # axes that move together
        - {data.n_train: [500, 1000], data.label_noise: [0.0, 0.1]}

Every trial is validated after substitution; the first problem is a ``SpecError`` that names
the field. Trial ids come from ``dd.spec.ids``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from dd.engine.costs import PLANS
from dd.plan.refine import Refine, parse_refine
from dd.spec.config import Trial
from dd.spec.errors import DDError, SpecError
from dd.spec.expand import expand_trials
from dd.spec.fields import bounded, build, check_name, one_of
from dd.spec.grid import expand_grid, grid_blocks, grid_size, range_size, set_dotted
from dd.spec.ids import trial_id

TRIAL_SECTIONS = ("seed", "data", "model", "fit", "train")
SWEEP_SECTIONS = ("name", "description", "grid", "resources", "curves", "refine")
DEFAULT_MAX_TRIALS = 10_000_000


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What Ray gives each pack, how big a pack may grow, and how often a pack whose worker
    process died runs again (``retries``; a pack whose node is lost runs again uncounted).

    ``memory_gb`` is the device-memory budget a pack is cut to (and what Ray reserves for it).
    ``checkpoint_every`` > 0 saves a training pack's whole state every that many epochs, so a
    pack whose worker dies resumes there; ``checkpoint_minutes`` > 0 (default 10) also saves
    one after about that many minutes of training, so an interrupt or a preemption costs
    minutes, not the pack (0 turns it off); checkpoints of finished packs are deleted unless
    ``keep_checkpoints``. A training pack that reaches no new epoch within
    ``stall_minutes`` (default 30; 0 turns the watchdog off) of its start or its last one,
    nor within 3 times the time its measured rate predicts for its next evaluation point,
    is stopped and recorded as failed, stalled (``dd.run.schedule.Watchdog``); the sweep carries on.
    ``deterministic`` turns on XLA's deterministic GPU operations
    (``--xla_gpu_deterministic_ops``): cuDNN's fastest weight-gradient kernels accumulate in
    an order that varies between runs, so without it GPU results are not bit-reproducible.
    ``execution`` forces how a training pack combines its replicas (``sequential``, ``vmap``
    or ``block``, ``dd.engine.train.Plan``); ``auto`` (the default) takes the cheapest in the
    device's measured cost table (``dd.engine.costs``).
    ``packs_in_flight`` is how many packs one worker (one process, one CUDA context) runs at
    once, from threads, sharing its ``cpus``, ``gpus`` and ``memory_gb`` reservation and
    dividing its device's memory; 0 (the default) takes ``packs_per_worker``'s choice per
    backend. A pack that trains while another compiles keeps the device busy.
    """

    cpus: float = bounded(1.0, lo=0.0)
    gpus: float = bounded(0.0, lo=0.0)
    memory_gb: float = bounded(2.0, lo=0.01)
    max_pack: int = bounded(256, lo=1)
    retries: int = bounded(2, lo=0, hi=100)
    checkpoint_every: int = bounded(0, lo=0)
    checkpoint_minutes: float = bounded(10.0, lo=0.0)
    stall_minutes: float = bounded(30.0, lo=0.0)
    keep_checkpoints: bool = False
    deterministic: bool = False
    execution: str = one_of("auto", ("auto",) + PLANS)
    packs_in_flight: int = bounded(0, lo=0, hi=64)

    def packs_per_worker(self) -> int:
        """Packs one worker runs at once: ``packs_in_flight``, else 2 for a worker holding
        whole GPUs (one process per GPU, the next pack compiling while one trains) and 1 on
        a CPU or a GPU share (on a 2-core CPU two packs in flight per worker were slower:
        docs/bench.md, "Warm workers")."""
        if self.packs_in_flight:
            return self.packs_in_flight
        return 2 if self.gpus >= 1 else 1


@dataclass(frozen=True, kw_only=True)
class Curves:
    """How the aggregator reads the sweep.

    ``x``: the capacity axis (a dotted config path; default the first swept model field).
    ``threshold_metric`` / ``threshold_tol``: the interpolation threshold is the smallest x
    whose mean ``threshold_metric`` is below ``threshold_tol`` (defaults: train_error < 0.01
    for trained classifiers; train_mse < 1e-6 for closed-form fits and regression, since
    a least-squares fit reaches zero training error well before it interpolates).

    Modular (grokking) sweeps: a trial's time to memorise / generalise is its first step
    with train / test accuracy >= ``grok_accuracy``. Its phase (``dd.analysis.curves.grok_times``)
    compares accuracies with ``phase_accuracy``; generalising more than ``phase_gap_ratio``
    times later than memorising is grokking. The phase diagram spans ``phase_x`` x ``phase_y``
    (default: the first two swept axes other than seed).

    Sweeps over the training-set size: the effective model complexity (EMC, Nakkiran et al.
    2019) of a model at an epoch is the largest n_train whose mean ``threshold_metric`` is
    below ``emc_tol`` (default: the threshold tolerance, so 1% train error for classifiers).
    """

    x: str | None = None
    threshold_metric: str | None = None
    threshold_tol: float | None = bounded(None, lo=0.0)
    grok_accuracy: float = bounded(0.99, lo=0.0, hi=1.0)
    phase_accuracy: float = bounded(0.9, lo=0.0, hi=1.0)
    phase_gap_ratio: float = bounded(5.0, lo=1.0)
    phase_x: str | None = None
    phase_y: str | None = None
    emc_tol: float | None = None

    def check(self, path: str) -> None:
        if self.emc_tol is not None and self.emc_tol <= 0:
            raise SpecError(
                f"{path}.emc_tol",
                "must be > 0: the training error (or loss) "
                f"below which a training set counts as fit (got {self.emc_tol})",
            )


@dataclass(frozen=True)
class Spec:
    """A loaded sweep: its name, every trial of the grid, and the sweep-level settings."""

    name: str
    description: str
    trials: Sequence[Trial]  # a grid's: dd.spec.expand.GridTrials, built on demand
    axes: tuple[str, ...]
    resources: Resources
    curves: Curves
    mapping: dict  # the spec as loaded, saved beside the results
    refine: tuple[Refine, ...] = ()  # the transitions to locate (dd.plan.refine)


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key repeated in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise SpecError(
                        "",
                        f"duplicate key {key!r} at line "
                        f"{key_node.start_mark.line + 1} (a key may appear once "
                        "in a mapping)",
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


def load_spec(
    path: str | Path, overrides: Sequence[str] = (), *, max_trials: int = DEFAULT_MAX_TRIALS
) -> Spec:
    """Read and validate a YAML spec file (safe loader only), with ``overrides`` applied
    (``apply_overrides``): the resulting mapping is the spec that runs and is stored.
    ``max_trials``: as for ``parse_spec``."""
    return parse_spec(apply_overrides(read_spec_file(path), overrides), max_trials=max_trials)


def read_spec_file(path: str | Path) -> dict:
    """A spec file's mapping; its ``name`` defaults to the file's stem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DDError(f"{path}: cannot read spec file ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise SpecError(
            "", f"{path}: not UTF-8 text (byte {e.start}); save the spec as UTF-8"
        ) from None
    mapping = _yaml_mapping(text, f"{path}:")
    if "name" not in mapping:
        mapping["name"] = path.stem
        try:
            check_name(path.stem)
        except SpecError as e:
            raise SpecError(
                "name",
                f"{e.message} (the name comes from the file name "
                f"{path.name!r}; give 'name:' in the spec or rename the file)",
            ) from None
    return mapping


def spec_mapping(source: str | Path | dict) -> dict:
    """A spec mapping from a file path, a YAML text or a mapping (copied): what the Python
    API accepts. A string with no line break that names an existing file is a path."""
    if isinstance(source, dict):
        return copy.deepcopy(source)
    if isinstance(source, Path) or ("\n" not in source and Path(source).is_file()):
        return read_spec_file(source)
    if "\n" not in source and source.endswith((".yaml", ".yml")):
        raise DDError(f"{source}: no such spec file")
    return _yaml_mapping(source, "spec text:")


def _yaml_mapping(text: str, where: str) -> dict:
    try:
        mapping = yaml.load(text, Loader=_UniqueKeyLoader)
    except SpecError as e:
        raise SpecError("", f"{where} {e.message}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise SpecError(
            "", f"{where}{line} is not valid YAML ({getattr(e, 'problem', None) or e})"
        ) from None
    if not isinstance(mapping, dict):
        raise SpecError("", f"{where} a spec must be a YAML mapping")
    return mapping


def apply_overrides(mapping: dict, overrides: Sequence[str]) -> dict:
    """A copy of ``mapping`` with each ``PATH=VALUE`` set (the CLI's ``--set``).

    PATH is any dotted path into the spec (``train.epochs``, ``model.options.depth``);
    ``grid.AXIS`` sets the grid axis AXIS, whose own name is dotted (``grid.model.width``).
    VALUE is YAML: ``100``, ``[8, 16]``, ``{range: [0, 5]}``. The result is validated like
    a file, by ``parse_spec``.
    """
    out = copy.deepcopy(mapping)
    for text in overrides:
        path, sep, value_text = text.partition("=")
        path = path.strip()
        if not sep or not path:
            raise SpecError("--set", f"{text!r}: give PATH=VALUE, e.g. train.epochs=100")
        try:
            value = yaml.safe_load(value_text)
        except yaml.YAMLError as e:
            raise SpecError(
                f"--set {path}",
                f"{value_text!r} is not a YAML value ({getattr(e, 'problem', None) or e})",
            ) from None
        if path.startswith("grid."):
            grid = out.setdefault("grid", {})
            if not isinstance(grid, dict):
                raise SpecError("grid", "must be a mapping of axes to set an axis in it")
            grid[path.removeprefix("grid.")] = value
        else:
            set_dotted(out, path, value)
    return out


def parse_spec(mapping: dict, *, max_trials: int = DEFAULT_MAX_TRIALS) -> Spec:
    """Validate a spec mapping and expand its grid into trials.

    ``max_trials`` (the caller's ``Settings.max_trials``, from $DD_MAX_TRIALS): the most grid
    points the spec may have; a larger grid is refused before it is expanded, not after memory
    runs out."""
    unknown = sorted(set(mapping) - set(TRIAL_SECTIONS) - set(SWEEP_SECTIONS), key=str)
    if unknown:
        raise SpecError(
            str(unknown[0]),
            "unknown section; allowed: " + ", ".join(TRIAL_SECTIONS + SWEEP_SECTIONS),
        )
    name = check_name(mapping.get("name"))
    description = mapping.get("description", "")
    if not isinstance(description, str):
        raise SpecError("description", "must be a string")
    resources = build(Resources, mapping.get("resources") or {}, "resources")
    curves = build(Curves, mapping.get("curves") or {}, "curves")
    limit = max_trials
    blocks = grid_blocks(mapping.get("grid"))  # the grid, then its ``also`` blocks
    sizes = [range_size(block) for block in blocks]
    _check_size(0 if None in sizes else sum(sizes), limit)
    # The registries fill Data.VARIANTS and Model.VARIANTS (built-in kinds, then plugins); their
    # modules load JAX and Flax, which a grid of ranges refused by its size above never pays for.
    from dd.datasets import registry as datasets
    from dd.models import registry as models

    datasets.load()
    models.load()

    base = {k: copy.deepcopy(mapping[k]) for k in TRIAL_SECTIONS if k in mapping}
    build(Trial, base)  # the base alone must be valid, so its errors name no grid value
    expanded = [expand_grid(block, "grid" in mapping) for block in blocks]
    axes = expanded[0][0]
    _check_size(sum(grid_size(factors, limit) for _, factors in expanded), limit)
    zipped = {str(a) for g in (blocks[0] or {}).get("zip", []) for a in g}
    unique = expand_trials(base, expanded[0][1])
    if len(blocks) > 1:  # the also blocks' trials after the grid's, each once
        every = {trial_id(t): t for t in unique}
        for _, factors in expanded[1:]:
            for t in expand_trials(base, factors):
                every.setdefault(trial_id(t), t)
        unique = tuple(every.values())
    refine = parse_refine(mapping.get("refine"), zipped, axes, unique[0])
    return Spec(
        name=name,
        description=description,
        trials=unique,
        axes=tuple(axes),
        resources=resources,
        curves=curves,
        mapping=mapping,
        refine=refine,
    )


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise SpecError(
            "grid",
            f"{size:,} grid points exceed the limit of {limit:,} trials "
            "per sweep; split the sweep, or raise $DD_MAX_TRIALS",
        )
