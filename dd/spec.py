"""Sweep specs: a YAML file -> a validated, frozen ``Spec`` holding every trial of its grid.

A spec file has a base trial (``seed``, ``data``, ``model``, ``fit``), a ``grid`` of axes
addressed by dotted path, and the sweep-level sections ``resources`` and ``curves``::

    name: rff_mnist1d
    data: {name: mnist1d, n_train: 1000}
    model: {name: fourier_features, n_features: 10}
    grid:
      model.n_features: {geomspace: [10, 10000, 40]}
      seed: {range: [0, 3]}
      zip:                        # axes that move together
        - {data.n_train: [500, 1000], data.label_noise: [0.0, 0.1]}

An axis is a list whose items are values or generators, or one generator:
``{range: [start, stop(, step)]}`` (stop excluded), ``{linspace: [start, stop, num]}``,
``{geomspace: [start, stop, num]}``. Values for an integer field are rounded and de-duplicated.
Every trial is validated after substitution; the first problem is a ``SpecError`` that names
the field.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dd.config import Trial, _check_range, build, field_kind
from dd.errors import DDError, SpecError

TRIAL_SECTIONS = ("seed", "data", "model", "fit", "train")
SWEEP_SECTIONS = ("name", "description", "grid", "resources", "curves")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
GENERATORS = ("range", "linspace", "geomspace")


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What Ray gives each pack, how big a pack may grow, and how often a failed pack retries.

    ``memory_gb`` is the device-memory budget a pack is cut to (and what Ray reserves for it).
    ``checkpoint_every`` > 0 saves a training pack's whole state every that many epochs, so a
    pack whose worker dies resumes there; checkpoints of finished packs are deleted unless
    ``keep_checkpoints``.
    """

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 2.0
    max_pack: int = 256
    retries: int = 2
    checkpoint_every: int = 0
    keep_checkpoints: bool = False

    def check(self, path: str) -> None:
        _check_range(f"{path}.cpus", self.cpus, 0.0, None)
        _check_range(f"{path}.gpus", self.gpus, 0.0, None)
        _check_range(f"{path}.memory_gb", self.memory_gb, 0.01, None)
        _check_range(f"{path}.max_pack", self.max_pack, 1, None)
        _check_range(f"{path}.retries", self.retries, 0, 100)
        _check_range(f"{path}.checkpoint_every", self.checkpoint_every, 0, None)


@dataclass(frozen=True, kw_only=True)
class Curves:
    """How the aggregator reads the sweep.

    ``x``: the capacity axis (a dotted config path; default the first swept model field).
    ``threshold_metric`` / ``threshold_tol``: the interpolation threshold is the smallest x
    whose mean ``threshold_metric`` is below ``threshold_tol`` (defaults: train_error < 0.01
    for trained classifiers; train_mse < 1e-6 for closed-form fits and regression, since
    a least-squares fit reaches zero training error well before it interpolates).

    Modular (grokking) sweeps: a trial's time to memorise / generalise is its first step
    with train / test accuracy >= ``grok_accuracy``. Its phase (``dd.grokking``) compares
    accuracies with ``phase_accuracy``; generalising more than ``phase_gap_ratio`` times
    later than memorising is grokking. The phase diagram spans ``phase_x`` x ``phase_y``
    (default: the first two swept axes other than seed).
    """

    x: str | None = None
    threshold_metric: str | None = None
    threshold_tol: float | None = None
    grok_accuracy: float = 0.99
    phase_accuracy: float = 0.9
    phase_gap_ratio: float = 5.0
    phase_x: str | None = None
    phase_y: str | None = None

    def check(self, path: str) -> None:
        if self.threshold_tol is not None:
            _check_range(f"{path}.threshold_tol", self.threshold_tol, 0.0, None)
        _check_range(f"{path}.grok_accuracy", self.grok_accuracy, 0.0, 1.0)
        _check_range(f"{path}.phase_accuracy", self.phase_accuracy, 0.0, 1.0)
        _check_range(f"{path}.phase_gap_ratio", self.phase_gap_ratio, 1.0, None)


@dataclass(frozen=True)
class Spec:
    """A loaded sweep: its name, every trial of the grid, and the sweep-level settings."""

    name: str
    description: str
    trials: tuple[Trial, ...]
    axes: tuple[str, ...]
    resources: Resources
    curves: Curves
    mapping: dict  # the spec as loaded, saved beside the results


def trial_id(trial: Trial) -> str:
    """A content hash of the fully resolved trial: the same config always has the same id.

    Fields at their default value are left out of the hash (``name``, which picks the
    variant, always stays), so a field added to dd later with a default that keeps the old
    behaviour leaves the ids of stored trials, and so their results, valid.
    """
    canonical = json.dumps(_without_defaults(trial), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _without_defaults(obj: Any) -> Any:
    if not dataclasses.is_dataclass(obj):
        return obj
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name != "name" and f.init and f.default is not dataclasses.MISSING \
                and value == f.default and type(value) is type(f.default):
            continue
        out[f.name] = _without_defaults(value)
    return out


def check_name(name: Any, path: str = "name") -> str:
    """A sweep name is a plain directory name: no separators, no ``..``, no leading dot."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise SpecError(path, f"{name!r} is not a valid sweep name; use letters, digits, "
                        "'_', '-' and '.', starting with a letter or digit, no '..'")
    return name


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec file (safe loader only)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise DDError(f"{path}: cannot read spec file ({e.strerror or e})") from None
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SpecError("", f"{path}:{where} is not valid YAML "
                        f"({getattr(e, 'problem', None) or e})") from None
    if not isinstance(mapping, dict):
        raise SpecError("", f"{path}: a spec must be a YAML mapping")
    mapping.setdefault("name", path.stem)
    return parse_spec(mapping)


def parse_spec(mapping: dict) -> Spec:
    """Validate a spec mapping and expand its grid into trials."""
    unknown = sorted(set(mapping) - set(TRIAL_SECTIONS) - set(SWEEP_SECTIONS), key=str)
    if unknown:
        raise SpecError(str(unknown[0]), "unknown section; allowed: "
                        + ", ".join(TRIAL_SECTIONS + SWEEP_SECTIONS))
    name = check_name(mapping.get("name"))
    description = mapping.get("description", "")
    if not isinstance(description, str):
        raise SpecError("description", "must be a string")
    resources = build(Resources, mapping.get("resources") or {}, "resources")
    curves = build(Curves, mapping.get("curves") or {}, "curves")
    base = {k: copy.deepcopy(mapping[k]) for k in TRIAL_SECTIONS if k in mapping}
    build(Trial, base)  # the base alone must be valid, so its errors name no grid value
    axes, assignments = expand_grid(mapping.get("grid", {}) if "grid" in mapping else {},
                                    "grid" in mapping)
    trials = []
    for assignment in assignments:
        raw = copy.deepcopy(base)
        for dotted, value in assignment.items():
            _set_dotted(raw, dotted, value)
        try:
            trials.append(build(Trial, raw))
        except SpecError as e:
            shown = ", ".join(f"{k}={v!r}" for k, v in assignment.items())
            raise SpecError(e.path, f"{e.message} (grid point {shown})") from None
    unique = list({trial_id(t): t for t in trials}.values())
    for field_name in ("x", "phase_x", "phase_y"):
        value = getattr(curves, field_name)
        if value is not None and field_kind(Trial, value) is None:
            raise SpecError(f"curves.{field_name}", f"{value!r} is not a trial field")
    return Spec(name=name, description=description, trials=tuple(unique), axes=tuple(axes),
                resources=resources, curves=curves, mapping=mapping)


def expand_grid(grid: Any, present: bool) -> tuple[list[str], list[dict[str, Any]]]:
    """The swept paths and one {path: value} assignment per grid point (a cartesian product)."""
    if not present:
        return [], [{}]
    if not isinstance(grid, dict) or not grid:
        raise SpecError("grid", "empty grid; give at least one axis, e.g. "
                        "'seed: {range: [0, 3]}'")
    factors: list[list[dict[str, Any]]] = []
    axes: list[str] = []
    for key, raw in grid.items():
        if key == "zip":
            if not isinstance(raw, list) or not raw:
                raise SpecError("grid.zip", "must be a non-empty list of groups of axes")
            for i, group in enumerate(raw):
                rows, names = _zip_group(group, f"grid.zip[{i}]")
                factors.append(rows)
                axes.extend(names)
            continue
        values = axis_values(str(key), raw, f"grid.{key}")
        factors.append([{key: v} for v in values])
        axes.append(str(key))
    duplicated = sorted({a for a in axes if axes.count(a) > 1})
    if duplicated:
        raise SpecError(f"grid.{duplicated[0]}", "axis appears more than once")
    points = [dict(kv for part in combo for kv in part.items())
              for combo in itertools.product(*factors)]
    return axes, points


def _zip_group(group: Any, path: str) -> tuple[list[dict[str, Any]], list[str]]:
    if not isinstance(group, dict) or not group:
        raise SpecError(path, "must be a mapping of at least one axis to its values")
    columns = {str(k): axis_values(str(k), v, f"{path}.{k}", unique=False)
               for k, v in group.items()}
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise SpecError(path, f"zipped axes must have equal lengths (got {shown})")
    names = list(columns)
    rows = [dict(zip(names, vals)) for vals in zip(*columns.values())]
    return rows, names


def axis_values(dotted: str, raw: Any, path: str, unique: bool = True) -> list[Any]:
    """The values of one axis: a list of values and generators, or one generator.

    Repeated values are dropped (``unique``), except in zip groups, where the i-th values of
    every axis form one point and a repeat is meaningful.
    """
    kind = field_kind(Trial, dotted)
    if kind is None:
        raise SpecError(path, "unknown field: not a path into seed, data, model, fit or train")
    items = raw if isinstance(raw, list) else [raw]
    values: list[Any] = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]" if isinstance(raw, list) else path
        if isinstance(item, dict):
            values.extend(_generate(item, where, kind))
        elif isinstance(item, list):
            raise SpecError(where, "nested lists are not allowed; give values or generators")
        else:
            values.append(item)
    if not values:
        raise SpecError(path, "axis has no values")
    if not unique:
        return values
    kept: list[Any] = []
    for v in values:
        if v not in kept:
            kept.append(v)
    return kept


def _generate(gen: dict, path: str, kind: Any) -> list[Any]:
    if len(gen) != 1 or next(iter(gen)) not in GENERATORS:
        raise SpecError(path, f"a generator is one of {{{', '.join(GENERATORS)}: [...]}} "
                        f"(got keys {sorted(map(str, gen))})")
    (op, args), = gen.items()
    if not isinstance(args, list) or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise SpecError(f"{path}.{op}", "must be a list of numbers")
    if op == "range":
        if len(args) not in (2, 3) or not all(float(a).is_integer() for a in args):
            raise SpecError(f"{path}.range", "must be [start, stop] or [start, stop, step] "
                            "of integers (stop excluded)")
        if len(args) == 3 and args[2] == 0:
            raise SpecError(f"{path}.range", "step must not be 0")
        return list(range(*map(int, args)))
    if len(args) != 3 or not float(args[2]).is_integer() or args[2] < 1:
        raise SpecError(f"{path}.{op}", "must be [start, stop, num] with num >= 1")
    start, stop, num = float(args[0]), float(args[1]), int(args[2])
    if op == "geomspace" and (start <= 0 or stop <= 0):
        raise SpecError(f"{path}.geomspace", "start and stop must be > 0")
    points = (np.geomspace if op == "geomspace" else np.linspace)(start, stop, num)
    if kind is int:
        return list(dict.fromkeys(int(round(v)) for v in points))
    return [float(v) for v in points]


def _set_dotted(mapping: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = mapping
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecError(dotted, f"cannot set inside {part!r}: it is not a mapping")
    node[leaf] = value
