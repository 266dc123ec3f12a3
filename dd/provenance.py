"""Where a result came from beyond dd's version: the hash of the lock file of exact package
versions (requirements.lock) that the installation was made from (``make install``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

LOCK_FILE = Path(__file__).resolve().parent.parent / "requirements.lock"


def lock_hash(path: Path = LOCK_FILE) -> str | None:
    """The SHA-256 of the lock file beside the dd source tree; None when dd runs without it
    (installed from a wheel, say), so a row never claims a lock it was not made from."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
