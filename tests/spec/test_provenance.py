"""The lock file pins every dependency, the venv holds its versions, and rows can name it."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from dd import __version__
from dd.spec.provenance import LOCK_FILE, lock_hash

ROOT = Path(__file__).parents[2]


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


SDIST = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"


@pytest.mark.slow
def test_a_wheel_carries_the_lock_so_its_rows_name_it(tmp_path):
    """pip builds the wheel from a copy of the source (nothing is written into the tree); its
    dd is then imported alone, unpacked where no requirements.lock lies beside the package."""
    source, dist, unpacked = tmp_path / "source", tmp_path / "dist", tmp_path / "unpacked"
    shutil.copytree(ROOT / "dd", source / "dd", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "requirements.lock"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist)]
    built = subprocess.run([*pip, str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("dd-*.whl")
    with zipfile.ZipFile(wheel) as zipped:
        assert zipped.read("dd/requirements.lock") == LOCK_FILE.read_bytes()
        zipped.extractall(unpacked)
    asked = subprocess.run(
        [sys.executable, "-c", "import dd.spec.provenance as p; print(p.__file__, p.lock_hash())"],
        cwd=unpacked,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(unpacked)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert asked.returncode == 0, asked.stderr
    where, found = asked.stdout.split()
    assert where.startswith(str(unpacked)) and not (unpacked / "requirements.lock").exists()
    assert found == lock_hash() == hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()

    sdist = subprocess.run(  # what `python -m build` makes first, and builds the wheel from
        [sys.executable, "-c", SDIST, str(dist)], cwd=source, capture_output=True, text=True
    )
    assert sdist.returncode == 0, sdist.stderr[-3000:]
    with tarfile.open(dist / sdist.stdout.split()[-1]) as tar:
        assert f"dd-{__version__}/requirements.lock" in tar.getnames(), "the sdist has the lock"


SHADOWED = """
import sys
from importlib.machinery import PathFinder

class Editable:  # what an editable install (pip install -e) appends to sys.meta_path
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname.partition(".")[0] != "dd" or fullname.count(".") > 1:
            return None
        return PathFinder.find_spec(fullname, [ROOT if fullname == "dd" else ROOT + "/dd"])

sys.meta_path.insert(sys.meta_path.index(PathFinder) + 1, Editable)
import dd.api
print("imported", dd.api.__name__)
"""


@pytest.mark.slow
def test_a_folder_named_dd_beside_a_script_is_named_in_one_line_with_the_fix(tmp_path):
    """A clone folder ``dd/`` (no ``__init__.py``) beside a script is a namespace package that
    the import system finds before an editable install's finder: dd's own modules still load
    through that finder, but ``dd`` is the empty folder. dd says so instead of failing on
    "cannot import name '__version__' from 'dd' (unknown location)"."""
    script = tmp_path / "script.py"
    script.write_text(f"ROOT = {str(ROOT)!r}\n" + SHADOWED)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run():
        return subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
        )

    plain = run()
    assert plain.returncode == 0 and "imported dd.api" in plain.stdout, plain.stderr
    (tmp_path / "dd").mkdir()
    shadowed = run()
    assert shadowed.returncode != 0
    last = shadowed.stderr.strip().splitlines()[-1]
    assert "unknown location" not in shadowed.stderr, shadowed.stderr
    assert str(tmp_path / "dd") in last and "shadows" in last and "rename" in last, last
