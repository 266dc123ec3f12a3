"""A user's object named "package.module:name": its form checked, then imported on request.

The form is checked when a spec is built (no import); the import happens only in the resolve
stage and in pack workers, never in commands that only read results.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from dd.spec.errors import SpecError
from dd.spec.fields import describe

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


def import_object(import_path: str, field: str) -> Any:
    """The callable at "package.module:name" (``name`` may be dotted); a SpecError on ``field``
    naming the import path and the reason when it cannot be had."""
    check_import_path(field, import_path)
    module_name, _, attr = import_path.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or the user's module failing at import
        raise SpecError(
            field, f"{import_path}: cannot import {module_name} ({one_line(e)})"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SpecError(field, f"{import_path}: {module_name} has no {attr!r}") from None
    if not callable(obj):
        raise SpecError(
            field,
            f"{import_path}: {attr} is a {type(obj).__name__}, not a Module class or a function",
        )
    return obj


def one_line(error: BaseException) -> str:
    """``Type: first line`` of an exception raised by the user's code."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
