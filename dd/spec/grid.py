"""Grid axes: a spec's ``grid`` section -> its axes and their values (the trials:
``dd.spec.expand``).

An axis is a list whose items are values or generators, or one generator:
``{range: [start, stop(, step)]}`` (stop excluded), ``{linspace: [start, stop, num]}``,
``{geomspace: [start, stop, num]}``. Values for an integer field are rounded and de-duplicated.
``zip`` groups hold axes that move together. ``also`` blocks add points beyond the product:
each is a mapping of unzipped axes to values, and adds the grid with those axes set to them
(refinement stores the seeds it adds at a few axis values so). Every trial is validated after
substitution; the first problem is a ``SpecError`` that names the field and the grid point.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dd.spec.config import Trial
from dd.spec.errors import SpecError
from dd.spec.fields import field_kind

GENERATORS = ("range", "linspace", "geomspace")
EXPANDED_POINTS = 1_000_000  # an axis generating this many points is counted by expanding it
EXACT = sys.maxsize  # a limit no axis exceeds: its length counted exactly


@dataclass(frozen=True)
class Space:
    """A ``linspace`` or ``geomspace`` generator, kept unexpanded until the grid's size passed."""

    op: str
    start: float
    stop: float
    num: int

    def bound(self, integer: bool) -> int:
        """Its number of values, or for an integer field an upper bound: the points are
        rounded and de-duplicated, which leaves at most one per integer between the ends."""
        if integer:
            return min(self.num, abs(round(self.stop) - round(self.start)) + 1)
        return self.num

    def values(self, integer: bool) -> list[Any]:
        fn = np.geomspace if self.op == "geomspace" else np.linspace
        points = fn(self.start, self.stop, self.num)
        if integer:  # rounded half to even, as round() does; first occurrences, in order
            rounded = np.rint(points).astype(np.int64)
            _, first = np.unique(rounded, return_index=True)
            return rounded[np.sort(first)].tolist()
        return points.tolist()


@dataclass(frozen=True)
class Axis:
    """One swept path and its items as written (values, ``range`` objects and ``Space``s),
    checked but not expanded, so that its length costs no memory."""

    dotted: str
    items: tuple[Any, ...]
    integer: bool
    unique: bool  # repeated values dropped (not in zip groups, where a repeat is a point)

    def length(self, limit: int) -> int:
        """The number of values, without expanding one ``range`` or one float generator
        (arithmetic). Other axes are expanded and counted when they generate at most
        ``max(limit, EXPANDED_POINTS)`` points; beyond, an upper bound is returned (the
        items' lengths summed, an integer generator's at most one value per integer between
        its ends: rounding and de-duplication may leave fewer), used only to refuse a grid."""
        (first, *more), integer = self.items, self.integer
        if not more and isinstance(first, range):
            return len(first)
        if not more and isinstance(first, Space) and not integer:
            return 1 if self.unique and first.start == first.stop else first.num
        if sum(_bound(item, integer=False) for item in self.items) <= max(limit, EXPANDED_POINTS):
            return len(self.values())
        return sum(_bound(item, integer) for item in self.items)

    def values(self) -> Sequence[Any]:
        """The axis's values in order (one ``range`` stays a range)."""
        if len(self.items) == 1 and isinstance(self.items[0], range):
            return self.items[0]
        values: list[Any] = []
        for item in self.items:
            if isinstance(item, range):
                values.extend(item)
            elif isinstance(item, Space):
                values.extend(item.values(self.integer))
            else:
                values.append(item)
        if not self.unique:
            return values
        return list(dict.fromkeys(values))  # scalars; as `in` would, 1, 1.0 and True are one


def _bound(item: Any, integer: bool) -> int:
    if isinstance(item, range):
        return len(item)
    if isinstance(item, Space):
        return item.bound(integer)
    return 1


@dataclass(frozen=True)
class Factor:
    """One factor of the grid's product: a single axis, or a zip group's axes, whose i-th
    values form one point."""

    axes: tuple[Axis, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.dotted for a in self.axes)

    def length(self, limit: int) -> int:
        return self.axes[0].length(limit)

    def columns(self) -> tuple[Sequence[Any], ...]:
        return tuple(a.values() for a in self.axes)


def grid_size(factors: Sequence[Factor], limit: int) -> int:
    """The number of grid points from the axes' lengths, nothing expanded (see
    ``Axis.length``: exact up to ``limit``, an upper bound only above it)."""
    return math.prod(f.length(limit) for f in factors)


def range_size(grid: Any) -> int | None:
    """The number of grid points when every axis (or zip group's first axis) is one
    ``range``, read from the raw grid before any field is resolved (so before the kind
    modules, and JAX, load), so that such a grid over the limit is refused at once; None
    for any other grid, whose exact count needs the fields' kinds."""
    if not isinstance(grid, dict):
        return None
    zips = grid.get("zip", [])
    if not isinstance(zips, list) or not all(isinstance(g, dict) and g for g in zips):
        return None
    raws = [v for k, v in grid.items() if k != "zip"] + [next(iter(g.values())) for g in zips]
    sizes = [_range_length(raw) for raw in raws]
    return None if None in sizes else math.prod(sizes)


def _range_length(raw: Any) -> int | None:
    if isinstance(raw, dict) and set(raw) == {"range"}:
        try:
            return len(_generator(raw, "grid"))
        except SpecError:  # reported where the axis is checked
            return None
    return None


def expand_grid(grid: Any, present: bool) -> tuple[list[str], list[Factor]]:
    """The swept paths and the grid's factors, checked but not expanded: the grid points are
    the cartesian product of the factors."""
    if not present:
        return [], []
    if not isinstance(grid, dict) or not grid:
        raise SpecError("grid", "empty grid; give at least one axis, e.g. 'seed: {range: [0, 3]}'")
    factors: list[Factor] = []
    for key, raw in grid.items():
        if key == "zip":
            if not isinstance(raw, list) or not raw:
                raise SpecError("grid.zip", "must be a non-empty list of groups of axes")
            factors.extend(_zip_group(group, f"grid.zip[{i}]") for i, group in enumerate(raw))
            continue
        factors.append(Factor((axis(str(key), raw, f"grid.{key}"),)))
    axes = [name for f in factors for name in f.names]
    duplicated = sorted({a for a in axes if axes.count(a) > 1})
    if duplicated:
        raise SpecError(f"grid.{duplicated[0]}", "axis appears more than once")
    return axes, factors


def grid_blocks(grid: Any) -> list[Any]:
    """The grid's blocks, each a grid whose points are a product: the grid without ``also``,
    then per ``also`` entry the grid with that entry's axes set to its values."""
    if not isinstance(grid, dict) or "also" not in grid:
        return [grid]
    main = {k: v for k, v in grid.items() if k != "also"}
    extra = grid["also"]
    if not isinstance(extra, list) or not extra:
        raise SpecError("grid.also", "must be a non-empty list of mappings of axes to values")
    zips = main.get("zip", [])
    zipped = (
        {str(a) for g in zips if isinstance(g, dict) for a in g}
        if isinstance(zips, list)
        else set()
    )
    own = [str(k) for k in main if k != "zip"]
    blocks = [main]
    for i, entry in enumerate(extra):
        if not isinstance(entry, dict) or not entry:
            raise SpecError(f"grid.also[{i}]", "must be a mapping of grid axes to their values")
        for key in entry:
            if str(key) not in own or key in zipped:
                raise SpecError(
                    f"grid.also[{i}].{key}",
                    "not a grid axis outside zip groups; the axes: " + ", ".join(own),
                )
        blocks.append({**main, **entry})
    return blocks


def _zip_group(group: Any, path: str) -> Factor:
    if not isinstance(group, dict) or not group:
        raise SpecError(path, "must be a mapping of at least one axis to its values")
    axes = tuple(axis(str(k), v, f"{path}.{k}", unique=False) for k, v in group.items())
    lengths = {a.dotted: a.length(limit=EXACT) for a in axes}  # compared exactly
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise SpecError(path, f"zipped axes must have equal lengths (got {shown})")
    return Factor(axes)


def axis(dotted: str, raw: Any, path: str, unique: bool = True) -> Axis:
    """One axis, checked: a list of values and generators, or one generator.

    Repeated values are dropped (``unique``), except in zip groups, where the i-th values of
    every axis form one point and a repeat is meaningful.
    """
    kind = field_kind(Trial, dotted)
    if kind is None:
        raise SpecError(path, "unknown field: not a path into seed, data, model, fit or train")
    items = raw if isinstance(raw, list) else [raw]
    checked: list[Any] = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]" if isinstance(raw, list) else path
        if isinstance(item, dict):
            checked.append(_generator(item, where))
        elif isinstance(item, list):
            raise SpecError(where, "nested lists are not allowed; give values or generators")
        else:
            checked.append(item)
    result = Axis(dotted, tuple(checked), kind is int, unique)
    if not items or all(_bound(item, kind is int) == 0 for item in checked):
        raise SpecError(path, "axis has no values")
    return result


def _generator(gen: dict, path: str) -> range | Space:
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
        return range(*map(int, args))
    if len(args) != 3 or not float(args[2]).is_integer() or args[2] < 1:
        raise SpecError(f"{path}.{op}", "must be [start, stop, num] with num >= 1")
    start, stop, num = float(args[0]), float(args[1]), int(args[2])
    if op == "geomspace" and (start <= 0 or stop <= 0):
        raise SpecError(f"{path}.geomspace", "start and stop must be > 0")
    return Space(op, start, stop, num)


def set_dotted(mapping: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = mapping
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecError(dotted, f"cannot set inside {part!r}: it is not a mapping")
    node[leaf] = value
