"""Trial ids: a content hash of a trial's canonical form, so the same trial always has the
same id and a stored result is found again."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from typing import Any

from dd.config import Trial


def trial_id(trial: Trial) -> str:
    """A content hash of the fully resolved trial: the same config always has the same id.

    The hash is of the trial's canonical JSON (keys sorted, no spaces). Fields at their
    default value are left out (``name``, which picks the variant, always stays), so a field
    added to dd later with a default that keeps the old behaviour leaves the ids of stored
    trials, and so their results, valid.

    Configs are frozen, so the id, and each part's canonical text, is kept on the object
    once computed: a million-trial grid, whose trials share their parts, hashes each part once.
    """
    cached = trial.__dict__.get("_trial_id")
    if cached is None:
        cached = hashlib.sha256(_canonical(trial, keep=False).encode()).hexdigest()[:16]
        trial.__dict__["_trial_id"] = cached  # frozen: __setattr__ refuses, the dict does not
    return cached


def _canonical(obj: Any, keep: bool = True) -> str:
    """``json.dumps(<obj without defaults>, sort_keys=True, separators=(",", ":"))``, built
    from the parts' texts (kept on each part when ``keep``)."""
    if type(obj) is int:
        return str(obj)  # what json.dumps writes, faster
    cached = getattr(obj, "__dict__", {}).get("_canonical")
    if cached is not None:
        return cached
    if not dataclasses.is_dataclass(obj):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"))
    parts = []
    for name, key, default, skippable in _hashed_fields(type(obj)):
        value = getattr(obj, name)
        if skippable and type(value) is type(default) and value == default:
            continue
        known = getattr(value, "__dict__", None)
        parts.append(key + (known and known.get("_canonical") or _canonical(value)))
    text = "{" + ",".join(parts) + "}"
    if keep:
        obj.__dict__["_canonical"] = text
    return text


@functools.cache
def _hashed_fields(cls: type) -> tuple[tuple[str, str, Any, bool], ...]:
    """The fields of a config class in the order of sorted keys: name, ``"name":``, default,
    and whether it is left out at its default."""
    return tuple(
        (
            f.name,
            json.dumps(f.name) + ":",
            f.default,
            f.name != "name" and f.init and f.default is not dataclasses.MISSING,
        )
        for f in sorted(dataclasses.fields(cls), key=lambda f: f.name)
    )
