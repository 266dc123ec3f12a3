"""The lock file pins every dependency, the venv holds its versions, and rows can name it."""

from __future__ import annotations

import hashlib
import re
import tomllib
from importlib import metadata
from pathlib import Path

from dd.provenance import LOCK_FILE, lock_hash

ROOT = Path(__file__).parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _locked(lock=LOCK_FILE) -> dict[str, str]:
    pins = (
        line.split("==")
        for line in lock.read_text().splitlines()
        if line and not line[0].isspace() and not line.startswith("#")
    )
    return {_name(name): version for name, version in pins}


def test_the_bench_lock_agrees_with_the_test_lock_on_every_shared_package():
    """make bench installs its lock into the same .venv: a package pinned differently there
    would leave the environment off the test lock (make lock constrains one by the other)."""
    tests, bench = _locked(), _locked(ROOT / "requirements-bench.lock")
    assert {n: (v, bench[n]) for n, v in tests.items() if n in bench and bench[n] != v} == {}


def test_the_lock_pins_every_dependency_and_test_and_lint_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [
        r for extra in ("test", "lint") for r in project["optional-dependencies"][extra]
    ]
    assert {_name(r) for r in wanted} - set(_locked()) == set(), "run make lock"


def test_the_environment_holds_the_locked_versions():
    """make install installs from the lock; a version that differs was installed by hand."""
    differs = {}
    for name, version in _locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            differs[name] = (installed, version)
    assert differs == {}, "installed, locked; run make install"


def test_lock_hash_is_the_lock_files_sha256_or_none_without_one(tmp_path):
    assert lock_hash() == hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()
    other = tmp_path / "requirements.lock"
    other.write_text("numpy==2.0.0\n")
    assert lock_hash(other) == hashlib.sha256(b"numpy==2.0.0\n").hexdigest() != lock_hash()
    assert lock_hash(tmp_path / "absent.lock") is None
