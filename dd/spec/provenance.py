"""Where a result came from beyond dd's version: the hash of the lock file of exact package
versions (requirements.lock) that the installation was made from (``make install``).

A source checkout (the editable install of ``make install``) reads the lock beside the dd
source tree; a wheel carries a copy as package data, written by setup.py at build time.

dd's version (``DD_VERSION``, what rows and reports record) is read here from the package, so
that a folder named ``dd`` that shadows it fails with a line that says so."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # dd/, from dd/spec/provenance.py
LOCK_FILE = PACKAGE.parent / "requirements.lock"
PACKAGED_LOCK_FILE = PACKAGE / "requirements.lock"


def _dd_version() -> str:
    """``dd.__version__``. A folder named dd without ``__init__.py`` beside a script (a clone
    of dd's repository) is a namespace package that Python finds before an editable install's
    finder: dd's modules still load, but ``dd`` is that folder, without a version."""
    package = sys.modules["dd"]
    version = getattr(package, "__version__", None)
    if version is None:
        folder = next(iter(getattr(package, "__path__", [])), "a folder named dd")
        raise ImportError(
            f"dd: {folder} (a folder named dd without __init__.py, such as a clone of dd's "
            f"repository) shadows the installed dd package at {PACKAGE}; run from another "
            "folder, or rename that one"
        )
    return version


DD_VERSION = _dd_version()


def lock_hash(path: Path | None = None) -> str | None:
    """The SHA-256 of the lock file: ``path``, else a wheel's own copy, else the source tree's;
    None when there is none, so a row never claims a lock it was not made from."""
    if path is None:
        path = PACKAGED_LOCK_FILE if PACKAGED_LOCK_FILE.is_file() else LOCK_FILE
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
