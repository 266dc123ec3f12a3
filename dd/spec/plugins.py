"""Kinds from installed packages: the entry points of a group (``dd.datasets``, ``dd.models``,
``dd.curves``, ``dd.metrics``), each naming one kind object (``"my_pkg.moons:KIND"``).

A registry calls ``plugins(group, kind_type)`` once, after its built-in kinds, when it is first
asked (``load()`` in each registry): nothing is registered by importing a module. A plugin that
cannot be imported, or names something that is not a kind of its group, is one line on
stderr naming the entry point and why, and is left out; the other kinds still load.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TextIO

GROUPS = ("dd.datasets", "dd.models", "dd.curves", "dd.metrics")


def plugins(
    group: str,
    kind_type: type | tuple[type, ...],
    taken: Iterable[str] = (),
    name_of: Callable[[Any], Iterable[str]] = lambda kind: (kind.name,),
    warn: TextIO | None = None,
) -> list[Any]:
    """The kind objects the installed entry points of ``group`` name, in entry-point order;
    one whose names clash with ``taken`` (or an earlier plugin's) is refused like a broken one."""
    taken = set(taken)
    found = []
    for point in sorted(entry_points(group=group), key=lambda p: (p.name, p.value)):
        try:
            kind = point.load()
        except Exception as error:  # whatever the plugin's import raises
            _refuse(point, group, _one_line(error), warn)
            continue
        if not isinstance(kind, kind_type):
            wanted = " or ".join(t.__name__ for t in _types(kind_type))
            _refuse(point, group, f"not a {wanted} (got {type(kind).__name__})", warn)
            continue
        names = tuple(name_of(kind))
        clash = sorted(set(names) & taken)
        if clash:
            _refuse(point, group, f"name {clash[0]!r} is already registered", warn)
            continue
        taken |= set(names)
        found.append(kind)
    return found


def _types(kind_type: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind_type if isinstance(kind_type, tuple) else (kind_type,)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _refuse(point: EntryPoint, group: str, why: str, warn: TextIO | None) -> None:
    print(
        f"dd: plugin {point.name} = {point.value} ({group}) left out: {why}",
        file=warn or sys.stderr,
    )
