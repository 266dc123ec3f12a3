"""Config fields: frozen dataclasses built from plain mappings, every field validated.

``build`` turns a mapping into a dataclass tree and raises ``SpecError`` with the dotted field
path on the first problem. A class with ``VARIANTS`` is a tagged union: the ``name`` key picks
the dataclass, and each dataclass lists exactly the fields it accepts, so an unknown key is an
error that names it. Constraints are declared on the fields (``bounded``, ``one_of``) and
checked in one place (``validate``); a class's own ``check`` holds what spans several fields.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from dd.spec.errors import SpecError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a sweep name, matched whole


def describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Options(str):
    """Free-form options of a user's module or data loader, held as canonical JSON text.

    A trial is a frozen, hashable value whose canonical JSON is its id and whose every field
    is one results column: as text, the options keep all three properties (one string column,
    ``model_options``). Whole-number floats become integers (``depth: 2.0`` or a ``linspace``
    axis value is the same trial as ``depth: 2``). ``as_kwargs`` gives them back as keyword
    arguments, lists as tuples (hashable, as Flax module fields should be).
    """

    @classmethod
    def parse(cls, path: str, value: Any) -> Options:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise SpecError(
                path, f"must be a mapping of option names to values (got {describe(value)})"
            )

        def canonical(v: Any) -> Any:
            if isinstance(v, float) and v.is_integer():
                return int(v)
            if isinstance(v, (list, tuple)):
                return [canonical(x) for x in v]
            if isinstance(v, dict):
                return {k: canonical(x) for k, x in v.items()}
            return v

        try:
            text = json.dumps(
                canonical(value), sort_keys=True, separators=(",", ":"), allow_nan=False
            )
        except (TypeError, ValueError):
            raise SpecError(
                path,
                "values must be numbers, strings, booleans, null, lists or "
                f"mappings (got {describe(value)})",
            ) from None
        return cls(text)

    def as_kwargs(self) -> dict[str, Any]:
        def frozen(v: Any) -> Any:
            if isinstance(v, list):
                return tuple(frozen(x) for x in v)
            if isinstance(v, dict):
                return {k: frozen(x) for k, x in v.items()}
            return v

        return {k: frozen(v) for k, v in json.loads(self).items()}


NO_OPTIONS = Options("{}")


@dataclass(frozen=True)
class Bound:
    """The allowed range of a numeric field, declared on it with ``bounded``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def check(self, path: str, value: float) -> None:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            bound = f"> {self.lo}" if self.lo_open else f">= {self.lo}"
            raise SpecError(path, f"must be {bound} (got {describe(value)})")
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            bound = f"< {self.hi}" if self.hi_open else f"<= {self.hi}"
            raise SpecError(path, f"must be {bound} (got {describe(value)})")


def bounded(default: Any = dataclasses.MISSING, **bound: Any) -> Any:
    """A field whose value must lie in ``Bound(**bound)`` (None, and a string where the field
    also takes one, are left to the class's own ``check``)."""
    return dataclasses.field(default=default, metadata={"bound": Bound(**bound)})


def one_of(default: str, allowed: tuple[str, ...]) -> Any:
    """A string field that takes one of ``allowed``."""
    return dataclasses.field(default=default, metadata={"allowed": allowed})


def _check_choice(path: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(path, f"unknown value {value!r}; allowed: {', '.join(allowed)}")


@functools.cache
def _declared(cls: type) -> tuple[tuple[str, Any], ...]:
    """(field name, metadata) of every declared constraint of ``cls``, inherited ones included:
    a subclass that only changes a field's default keeps its parent's constraint."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for f in getattr(klass, "__dataclass_fields__", {}).values():
            if not f.init:  # derived by the class (ModularData's sizes): not the user's input
                found.pop(f.name, None)
            elif "bound" in f.metadata or "allowed" in f.metadata:  # not identity metadata
                found[f.name] = f.metadata
    return tuple(found.items())


def _check_declared(obj: Any, path: str) -> None:
    """The constraints declared on ``obj``'s fields, in one place."""
    for name, metadata in _declared(type(obj)):
        value = getattr(obj, name)
        if "bound" in metadata and isinstance(value, (int, float)) and not isinstance(value, bool):
            metadata["bound"].check(join(path, name), value)
        if "allowed" in metadata:
            _check_choice(join(path, name), value, metadata["allowed"])


def convert(path: str, kind: Any, value: Any) -> Any:
    """Check ``value`` against the annotation ``kind``; ints pass as floats, not the reverse."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        for kind_ in inner[:-1]:  # e.g. int | str: the first kind the value fits
            try:
                return convert(path, kind_, value)
            except SpecError:
                pass
        return convert(path, inner[-1], value)
    if dataclasses.is_dataclass(kind):
        return build(kind, value, path)
    if kind is Options:
        return Options.parse(path, value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise SpecError(path, f"must be true or false (got {describe(value)})")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(path, f"must be an integer (got {describe(value)})")
        if isinstance(value, float) and not value.is_integer():
            raise SpecError(path, f"must be an integer (got {describe(value)})")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(path, f"must be a number (got {describe(value)})")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise SpecError(path, f"must be a finite number (got {describe(value)})")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise SpecError(path, f"must be a string (got {describe(value)})")
        return value
    raise TypeError(f"unsupported annotation {kind!r} at {path}")  # a bug in dd, not input


def build(cls: type, raw: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from mapping ``raw``, validating every field.

    A class with ``VARIANTS`` is a tagged union: ``raw["name"]`` selects the variant.
    """
    if not isinstance(raw, dict):
        raise SpecError(path, f"must be a mapping (got {describe(raw)})")
    variants = getattr(cls, "VARIANTS", None)
    if variants is not None:
        name = raw.get("name")
        if not isinstance(name, str) or name not in variants:
            allowed = ", ".join(sorted(variants))
            raise SpecError(
                join(path, "name"),
                f"unknown {path or 'kind'} {describe(name)}; allowed: {allowed}",
            )
        cls = variants[name]
    hints, fields = init_fields(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise SpecError(
            join(path, str(unknown[0])), f"unknown field; allowed: {', '.join(sorted(fields))}"
        )
    values = {}
    for name, f in fields.items():
        sub = join(path, name)
        if name in raw:
            values[name] = convert(sub, hints[name], raw[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(sub, "required field is missing")
    obj = cls(**values)
    validate(obj, path)
    return obj


def validate(obj: Any, path: str = "") -> None:
    """Check a built config: the constraints declared on its fields, then what its class's
    own ``check`` (where it has one) says of several fields together."""
    _check_declared(obj, path)
    if hasattr(obj, "check"):
        obj.check(path)


@functools.cache
def init_fields(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    """The resolved annotations and init fields of a config class (cached: resolving string
    annotations dominated the loading of a 10,000-trial spec); a derived field
    (``dd.spec.ids``: facts the resolve stage learns) is none a spec may set."""
    fields = dataclasses.fields(cls)
    return typing.get_type_hints(cls), {
        f.name: f for f in fields if f.init and f.metadata.get("identity") != "derived"
    }


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def field_kind(cls: type, dotted: str) -> Any:
    """The annotation of the field at ``dotted`` inside ``cls`` (None if there is no such field).

    Unions of variants resolve through ``cls.VARIANTS`` when the field is shared by all of them.
    """
    head, _, rest = dotted.partition(".")
    candidates = list(getattr(cls, "VARIANTS", {cls.__name__: cls}).values())
    kinds = []
    for variant in candidates:
        hints = typing.get_type_hints(variant)
        if head not in hints:
            continue
        kind = hints[head]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if kind is Options and rest:  # one key of a user's options: any JSON value
            kinds.append(typing.Any)
            continue
        kinds.append(field_kind(kind, rest) if rest else kind)
    kinds = [k for k in kinds if k is not None]
    return kinds[0] if kinds else None


def check_name(name: Any, path: str = "name") -> str:
    """A sweep name is a plain directory name: no separators, no ``..``, no leading dot."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise SpecError(
            path,
            f"{name!r} is not a valid sweep name; use letters, digits, "
            "'_', '-' and '.', starting with a letter or digit, no '..'",
        )
    return name
