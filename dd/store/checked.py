"""Files dd later trusts (checkpoints, pack profiles, run records) carry a SHA-256 of their
payload, written with it in the same atomic write, so a file damaged on disk after it was
written (flipped bytes, a truncation, an edit) is found and never trusted.

The file is one header line, ``dd-sha256 <64 hex digits>``, then the payload (``tail -n +2``
gives it back). A file without that header (an older dd's, or a hand-made one) is refused
like a damaged one.
"""

from __future__ import annotations

import hashlib

from dd.store.paths import StorePath, atomic_write_bytes

MAGIC = b"dd-sha256 "
HEADER = len(MAGIC) + 64 + 1  # the magic, the hex digest, a newline


class Damaged(ValueError):
    """A checked file whose payload does not match its checksum, or that has none."""


def seal(payload: bytes) -> bytes:
    """``payload`` behind its checksum header."""
    return MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def unseal(data: bytes) -> bytes:
    """The payload of sealed ``data``; ``Damaged`` says why when it does not check."""
    if not data.startswith(MAGIC) or data[HEADER - 1 : HEADER] != b"\n":
        raise Damaged("no checksum: written by an older dd, or damaged")
    payload = data[HEADER:]
    if hashlib.sha256(payload).hexdigest().encode() != data[len(MAGIC) : HEADER - 1]:
        raise Damaged("checksum mismatch: the file was damaged after it was written")
    return payload


def write_checked(path: StorePath, payload: bytes) -> None:
    """``payload`` with its checksum, atomically (``dd.store.paths.atomic_write_bytes``)."""
    atomic_write_bytes(path, seal(payload))


def read_checked(path: StorePath) -> bytes:
    """The payload of a file ``write_checked`` wrote; ``Damaged`` if it does not check,
    ``OSError`` if it cannot be read."""
    return unseal(path.read_bytes())


NUMBER = (int, float)


def read_record(path: StorePath, fields: dict[str, type | tuple[type, ...]]) -> dict:
    """A checked JSON object whose ``fields`` have the given types (bool is no number);
    ``Damaged`` names the first that does not."""
    import json

    try:
        record = json.loads(read_checked(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:  # a checksum of bad JSON: dd's bug
        raise Damaged(f"not JSON ({e})") from None
    if not isinstance(record, dict):
        raise Damaged("not a JSON object")
    for name, kind in fields.items():
        value = record.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise Damaged(f"field {name}: {value!r} is not {_names(kind)}")
        if isinstance(value, dict) and not all(isinstance(v, NUMBER) for v in value.values()):
            raise Damaged(f"field {name}: {value!r} holds values that are not numbers")
    return record


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    words = {int: "a number", float: "a number", str: "text", dict: "an object"}
    return " or ".join(dict.fromkeys(words.get(k, k.__name__) for k in kinds))
