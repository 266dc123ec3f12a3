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
import functools
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dd.config import Fit, Train, Trial
from dd.errors import DDError, SpecError
from dd.fields import bounded, build, convert, field_kind, init_fields, validate

TRIAL_SECTIONS = ("seed", "data", "model", "fit", "train")
SWEEP_SECTIONS = ("name", "description", "grid", "resources", "curves")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # matched whole (fullmatch)
GENERATORS = ("range", "linspace", "geomspace")
DEFAULT_MAX_TRIALS = 10_000_000


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What Ray gives each pack, how big a pack may grow, and how often a failed pack retries.

    ``memory_gb`` is the device-memory budget a pack is cut to (and what Ray reserves for it).
    ``checkpoint_every`` > 0 saves a training pack's whole state every that many epochs, so a
    pack whose worker dies resumes there; checkpoints of finished packs are deleted unless
    ``keep_checkpoints``. ``deterministic`` turns on XLA's deterministic GPU operations
    (``--xla_gpu_deterministic_ops``): cuDNN's fastest weight-gradient kernels accumulate in
    an order that varies between runs, so without it GPU results are not bit-reproducible.
    """

    cpus: float = bounded(1.0, lo=0.0)
    gpus: float = bounded(0.0, lo=0.0)
    memory_gb: float = bounded(2.0, lo=0.01)
    max_pack: int = bounded(256, lo=1)
    retries: int = bounded(2, lo=0, hi=100)
    checkpoint_every: int = bounded(0, lo=0)
    keep_checkpoints: bool = False
    deterministic: bool = False


@dataclass(frozen=True, kw_only=True)
class Curves:
    """How the aggregator reads the sweep.

    ``x``: the capacity axis (a dotted config path; default the first swept model field).
    ``threshold_metric`` / ``threshold_tol``: the interpolation threshold is the smallest x
    whose mean ``threshold_metric`` is below ``threshold_tol`` (defaults: train_error < 0.01
    for trained classifiers; train_mse < 1e-6 for closed-form fits and regression, since
    a least-squares fit reaches zero training error well before it interpolates).

    Modular (grokking) sweeps: a trial's time to memorise / generalise is its first step
    with train / test accuracy >= ``grok_accuracy``. Its phase (``dd.curves.grok_times``)
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
    trials: tuple[Trial, ...]
    axes: tuple[str, ...]
    resources: Resources
    curves: Curves
    mapping: dict  # the spec as loaded, saved beside the results


def trial_id(trial: Trial) -> str:
    """A content hash of the fully resolved trial: the same config always has the same id.

    The hash is of the trial's canonical JSON (keys sorted, no spaces). Fields at their
    default value are left out (``name``, which picks the variant, always stays), so a field
    added to dd later with a default that keeps the old behaviour leaves the ids of stored
    trials, and so their results, valid.

    Configs are frozen, so the id, and each part's canonical text, is kept on the object
    once computed: a million-trial grid, whose trials share their parts, hashes each part once.
    """
    cached = trial.__dict__.get("_trial_id")
    if cached is None:
        cached = hashlib.sha256(_canonical(trial, keep=False).encode()).hexdigest()[:16]
        trial.__dict__["_trial_id"] = cached  # frozen: __setattr__ refuses, the dict does not
    return cached


def _canonical(obj: Any, keep: bool = True) -> str:
    """``json.dumps(<obj without defaults>, sort_keys=True, separators=(",", ":"))``, built
    from the parts' texts (kept on each part when ``keep``)."""
    if type(obj) is int:
        return str(obj)  # what json.dumps writes, faster
    cached = getattr(obj, "__dict__", {}).get("_canonical")
    if cached is not None:
        return cached
    if not dataclasses.is_dataclass(obj):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"))
    parts = []
    for name, key, default, skippable in _hashed_fields(type(obj)):
        value = getattr(obj, name)
        if skippable and type(value) is type(default) and value == default:
            continue
        known = getattr(value, "__dict__", None)
        parts.append(key + (known and known.get("_canonical") or _canonical(value)))
    text = "{" + ",".join(parts) + "}"
    if keep:
        obj.__dict__["_canonical"] = text
    return text


@functools.cache
def _hashed_fields(cls: type) -> tuple[tuple[str, str, Any, bool], ...]:
    """The fields of a config class in the order of sorted keys: name, ``"name":``, default,
    and whether it is left out at its default."""
    return tuple(
        (
            f.name,
            json.dumps(f.name) + ":",
            f.default,
            f.name != "name" and f.init and f.default is not dataclasses.MISSING,
        )
        for f in sorted(dataclasses.fields(cls), key=lambda f: f.name)
    )


def check_name(name: Any, path: str = "name") -> str:
    """A sweep name is a plain directory name: no separators, no ``..``, no leading dot."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise SpecError(
            path,
            f"{name!r} is not a valid sweep name; use letters, digits, "
            "'_', '-' and '.', starting with a letter or digit, no '..'",
        )
    return name


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


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> Spec:
    """Read and validate a YAML spec file (safe loader only), with ``overrides`` applied
    (``apply_overrides``): the resulting mapping is the spec that runs and is stored."""
    return parse_spec(apply_overrides(read_spec_file(path), overrides))


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
            _set_dotted(out, path, value)
    return out


def parse_spec(mapping: dict) -> Spec:
    """Validate a spec mapping and expand its grid into trials."""
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
    base = {k: copy.deepcopy(mapping[k]) for k in TRIAL_SECTIONS if k in mapping}
    build(Trial, base)  # the base alone must be valid, so its errors name no grid value
    axes, factors = expand_grid(
        mapping.get("grid", {}) if "grid" in mapping else {}, "grid" in mapping
    )
    size, limit = math.prod(len(f) for f in factors), max_trials()
    if size > limit:
        raise SpecError(
            "grid",
            f"{size:,} grid points exceed the limit of {limit:,} trials "
            "per sweep; split the sweep, or raise $DD_MAX_TRIALS",
        )
    unique = expand_trials(base, factors)
    check_curves(curves, axes, unique[0])
    return Spec(
        name=name,
        description=description,
        trials=tuple(unique),
        axes=tuple(axes),
        resources=resources,
        curves=curves,
        mapping=mapping,
    )


def max_trials() -> int:
    """The most grid points a spec may have: $DD_MAX_TRIALS, else 10 million (a grid is
    refused before it is expanded, not after memory runs out)."""
    text = os.environ.get("DD_MAX_TRIALS")
    if text is None:
        return DEFAULT_MAX_TRIALS
    if not text.strip().isdigit() or int(text) < 1:
        raise DDError(f"$DD_MAX_TRIALS: must be a whole number >= 1, got {text!r}")
    return int(text)


def expand_trials(base: dict, factors: list[list[dict[str, Any]]]) -> list[Trial]:
    """One validated trial per grid point (duplicates, by id, dropped; order kept).

    Equal to ``build(Trial, base with the point's values set)`` for every point, but each
    section (``data``, ``model``, ...) is built and validated once per distinct set of its
    grid values, and trials share those parts: a million trials cost a million small
    ``Trial`` objects, not a million config trees.
    """
    hints, fields = init_fields(Trial)
    parts: dict[Any, Any] = {}  # (section, its grid values) -> the built section

    def part(section: str, touched: tuple) -> Any:
        key = (section, touched)  # grid values are scalars: hashable
        if key in parts:
            return parts[key]
        raw = {section: copy.deepcopy(base[section])} if section in base else {}
        for dotted, _, value in touched:
            _set_dotted(raw, dotted, value)
        parts[key] = convert(section, hints[section], raw[section])
        return parts[key]

    # each factor's entries grouped by section once: (section, ((path, type, value), ...))
    grouped = [
        [
            tuple(
                (
                    section,
                    tuple((d, type(v), v) for d, v in entry.items() if d.split(".")[0] == section),
                )
                for section in dict.fromkeys(d.split(".")[0] for d in entry)
            )
            for entry in factor
        ]
        for factor in factors
    ]
    always = [section for section in fields if section in base]
    always_set = set(always)
    trials: dict[str, Trial] = {}
    for combo in itertools.product(*grouped):
        touched: dict[str, tuple] = {}
        for entry in combo:
            for section, entries in entry:
                touched[section] = touched.get(section, ()) + entries
        try:
            sections = (
                always
                if touched.keys() <= always_set
                else [  # (the usual case first)
                    f for f in fields if f in touched or f in base
                ]
            )
            values = {section: part(section, touched.get(section, ())) for section in sections}
            # the default Trial would give an absent fit (closed form) or train (networks),
            # as one object shared by the trials
            section, cls = ("fit", Fit) if values["model"].CLOSED_FORM else ("train", Train)
            if values.get(section) is None:
                values[section] = parts.setdefault((section, "default"), cls())
            trial = Trial(**values)
            validate(trial)
        except SpecError as e:
            shown = ", ".join(f"{d}={v!r}" for entry in combo for _, vs in entry for d, _, v in vs)
            raise SpecError(e.path, f"{e.message} (grid point {shown})") from None
        trials.setdefault(trial_id(trial), trial)
    return list(trials.values())


def check_curves(curves: Curves, axes: list[str], trial: Trial) -> None:
    """Each registered curve kind checks the curves fields it reads: a typo would otherwise
    read as a scientific result ("threshold not reached")."""
    from dd.curves.registry import check_curves as check_kinds

    check_kinds(curves, axes, trial)


def expand_grid(grid: Any, present: bool) -> tuple[list[str], list[list[dict[str, Any]]]]:
    """The swept paths and the grid's factors: the grid points are the cartesian product of
    the factors, each point the union of one {path: value} from each factor."""
    if not present:
        return [], []
    if not isinstance(grid, dict) or not grid:
        raise SpecError("grid", "empty grid; give at least one axis, e.g. 'seed: {range: [0, 3]}'")
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
    return axes, factors


def _zip_group(group: Any, path: str) -> tuple[list[dict[str, Any]], list[str]]:
    if not isinstance(group, dict) or not group:
        raise SpecError(path, "must be a mapping of at least one axis to its values")
    columns = {
        str(k): axis_values(str(k), v, f"{path}.{k}", unique=False) for k, v in group.items()
    }
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise SpecError(path, f"zipped axes must have equal lengths (got {shown})")
    names = list(columns)
    rows = [dict(zip(names, vals, strict=True)) for vals in zip(*columns.values(), strict=True)]
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
    return list(dict.fromkeys(values))  # scalars; as `in` would, 1, 1.0 and True are one


def _generate(gen: dict, path: str, kind: Any) -> list[Any]:
    if len(gen) != 1 or next(iter(gen)) not in GENERATORS:
        raise SpecError(
            path,
            f"a generator is one of {{{', '.join(GENERATORS)}: [...]}} "
            f"(got keys {sorted(map(str, gen))})",
        )
    ((op, args),) = gen.items()
    if not isinstance(args, list) or not all(
        isinstance(a, (int, float)) and not isinstance(a, bool) for a in args
    ):
        raise SpecError(f"{path}.{op}", "must be a list of numbers")
    if op == "range":
        if len(args) not in (2, 3) or not all(float(a).is_integer() for a in args):
            raise SpecError(
                f"{path}.range",
                "must be [start, stop] or [start, stop, step] of integers (stop excluded)",
            )
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
