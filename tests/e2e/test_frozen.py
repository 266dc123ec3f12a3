"""Frozen means frozen: no code in dd writes into a config after it is built."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DD = Path(__file__).resolve().parents[2] / "dd"


def _is_object(f: ast.AST, attr: str) -> bool:
    return (
        isinstance(f, ast.Attribute)
        and f.attr == attr
        and isinstance(f.value, ast.Name)
        and f.value.id == "object"
    )


def _unbuilt(function: ast.AST) -> set[str]:
    """The names a function binds to ``object.__new__(...)``: objects it is still building."""
    return {
        target.id
        for n in ast.walk(function)
        if isinstance(n, ast.Assign)
        and isinstance(n.value, ast.Call)
        and _is_object(n.value.func, "__new__")
        for target in n.targets
        if isinstance(target, ast.Name)
    }


def _writes(tree: ast.AST) -> list[tuple[int, str]]:
    """``object.__setattr__`` outside ``__post_init__`` (building the object, the dataclasses
    idiom for a derived field) other than into an object the same function made with
    ``object.__new__`` (building it without ``__init__``), and any write through an object's
    ``__dict__``."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, function: str, unbuilt: set[str]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function, unbuilt = node.name, _unbuilt(node)
        if isinstance(node, ast.Call):
            f = node.func
            first = node.args[0] if node.args else None
            if (
                _is_object(f, "__setattr__")
                and function != "__post_init__"
                and not (isinstance(first, ast.Name) and first.id in unbuilt)
            ):
                found.append((node.lineno, f"object.__setattr__ in {function}"))
            if (
                isinstance(f, ast.Attribute)
                and f.attr in ("update", "setdefault", "pop", "clear")
                and isinstance(f.value, ast.Attribute)
                and f.value.attr == "__dict__"
            ):
                found.append((node.lineno, f"__dict__.{f.attr}"))
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = getattr(node, "targets", None) or [node.target]
        for target in targets:
            if isinstance(target, ast.Subscript) and (
                isinstance(target.value, ast.Attribute) and target.value.attr == "__dict__"
            ):
                found.append((node.lineno, "__dict__[...] write"))
        for child in ast.iter_child_nodes(node):
            visit(child, function, unbuilt)

    visit(tree, "", set())
    return found


def test_the_checker_sees_each_kind_of_write():
    source = (
        "def f(x):\n    x.__dict__['a'] = 1\n    x.__dict__.update(b=2)\n"
        "    object.__setattr__(x, 'c', 3)\n"
        "class C:\n    def __post_init__(self):\n        object.__setattr__(self, 'd', 4)\n"
        "def g(x):\n    t = object.__new__(C)\n    object.__setattr__(t, 'e', 5)\n"
        "    object.__setattr__(x, 'f', 6)\n"
    )
    assert [line for line, _ in _writes(ast.parse(source))] == [2, 3, 4, 11]


@pytest.mark.slow
def test_no_module_in_dd_writes_into_a_built_object():
    offenders = [
        f"{path.relative_to(DD.parent)}:{line}: {what}"
        for path in sorted(DD.rglob("*.py"))
        for line, what in _writes(ast.parse(path.read_text()))
    ]
    assert not offenders, "\n".join(offenders)
