"""Grid expansion: a spec's ``grid`` section -> its axes, their values and the trials.

An axis is a list whose items are values or generators, or one generator:
``{range: [start, stop(, step)]}`` (stop excluded), ``{linspace: [start, stop, num]}``,
``{geomspace: [start, stop, num]}``. Values for an integer field are rounded and de-duplicated.
``zip`` groups hold axes that move together. Every trial is validated after substitution; the
first problem is a ``SpecError`` that names the field and the grid point.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np

from dd.config import Fit, Train, Trial
from dd.errors import SpecError
from dd.fields import convert, field_kind, init_fields, validate
from dd.ids import trial_id

GENERATORS = ("range", "linspace", "geomspace")


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
            set_dotted(raw, dotted, value)
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


def set_dotted(mapping: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = mapping
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecError(dotted, f"cannot set inside {part!r}: it is not a mapping")
    node[leaf] = value
