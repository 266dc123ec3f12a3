"""dd's layers point one way (docs/design.md): every import of a dd module, inside functions
included, goes to the same layer or one below it, and every module sits in a layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dd

PACKAGE = Path(dd.__file__).parent
# Bottom to top; a layer may import its own modules and those of the layers before it.
LAYERS = (
    ("spec",),
    ("datasets", "models"),
    ("store",),
    ("engine",),
    ("plan",),
    ("run",),
    ("analysis",),
    ("api", "cli", "cli_parsers", "handle", "result", "__main__"),
)


def layer_of(module: str) -> int:
    """The rank of a dotted dd module (``dd.engine.step`` -> the engine's); ``dd`` itself, the
    package's face with its version, is below everything."""
    parts = module.split(".")
    if parts == ["dd"] or parts[1] == "__version__":
        return -1
    for rank, names in enumerate(LAYERS):
        if parts[1] in names:
            return rank
    raise LookupError(f"{module} sits in no layer of tests/e2e/test_layers.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def dd_imports(source: str, package: str) -> list[tuple[int, str]]:
    """(line, dotted target) of every import of dd in a module's source, at any depth;
    ``package`` is the package that relative imports start from."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" for a in node.names] if base == "dd" else [base]
            found += [(node.lineno, target) for target in targets]
    return [(line, target) for line, target in found if target.split(".")[0] == "dd"]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_sits_in_a_layer_and_few_sit_directly_in_dd():
    for path in MODULES:
        layer_of(module_name(path))
    assert len(list(PACKAGE.glob("*.py"))) <= 15


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_down_the_layers(path: Path):
    own = (
        layer_of(module_name(path)) if path.name != "__init__.py" or path.parent != PACKAGE else -1
    )
    upward = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
        for line, target in dd_imports(path.read_text(), _package(path))
        if layer_of(target) > own
    ]
    assert not upward, "; ".join(upward)


def _package(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def test_the_layer_check_sees_an_upward_import_inside_a_function():
    """The check can fail: an import from the store up into the analysis layer, hidden in a
    function, or relative, is found."""
    source = "def f():\n    from dd.analysis.query import query_arrow\nfrom ..run import pool\n"
    upward = [
        (line, target)
        for line, target in dd_imports(source, "dd.store")
        if layer_of(target) > layer_of("dd.store.probe")
    ]
    assert sorted(upward) == [(2, "dd.analysis.query"), (3, "dd.run")]


def test_no_two_test_modules_share_a_file_name():
    """The test folders are no packages, so pytest imports each test module by its file name:
    two of one name (tests/analysis/test_x.py beside tests/engine/test_x.py) stop the whole
    run at collection."""
    tests = Path(__file__).resolve().parents[1]
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
