"""Where a result came from beyond dd's version: the hash of the lock file of exact package
versions (requirements.lock) that the installation was made from (``make install``).

A source checkout (the editable install of ``make install``) reads the lock beside the dd
source tree; a wheel carries a copy as package data, written by setup.py at build time."""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # dd/, from dd/spec/provenance.py
LOCK_FILE = PACKAGE.parent / "requirements.lock"
PACKAGED_LOCK_FILE = PACKAGE / "requirements.lock"


def lock_hash(path: Path | None = None) -> str | None:
    """The SHA-256 of the lock file: ``path``, else a wheel's own copy, else the source tree's;
    None when there is none, so a row never claims a lock it was not made from."""
    if path is None:
        path = PACKAGED_LOCK_FILE if PACKAGED_LOCK_FILE.is_file() else LOCK_FILE
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
