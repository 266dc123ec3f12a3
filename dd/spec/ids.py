"""Trial ids: a content hash of a trial's canonical form, so the same trial always has the
same id and a stored result is found again.

Identity follows content, never location. A config field declares how its value counts
through its dataclass metadata ``IDENTITY``:

- ``"location"``: where files live (an image dataset's ``data_dir``) is left out; a built-in
  dataset is identified by its name (its files keep the published format, unversioned);
- ``"program"``: how a program compiles the network (a conv program's channel rounding,
  ``dd.models.base.ConvModel``) and the extra measures an evaluation computes
  (``train.measures``) are left out: the network computed is the same;
- ``"content"``: a user file's path (``data.path`` of an ``.npz``) stands for the SHA-256 of
  the file's bytes, written as ``"<field>_sha256"``: the same file at another or relative
  path gives the same id, changed contents a new one;
- ``"derived"``: what the resolve stage learnt of the config (a user's arrays' facts,
  ``dd.datasets.user.UserData.facts``) is left out, and is no column of a row
  (``dd.store.schema.flatten_config``) nor a field a spec may set (``dd.spec.fields``).

A python-loader dataset is identified by its loader's name and options: its arrays cannot be
hashed without running user code, so a loader whose data changes should change a version
option. Ids of trials without such fields are what they were before identity followed
content; ``legacy_trial_id`` gives the older, location-hashing id (``dd.plan.adopt`` renames
stored rows from it).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import weakref
from pathlib import Path
from typing import Any

from dd.spec.config import Trial
from dd.spec.errors import SpecError
from dd.spec.fields import join

IDENTITY = "identity"  # dataclass field metadata key: "location", "program" or "content"


def trial_id(trial: Trial, remember: bool = True) -> str:
    """A content hash of the fully resolved trial: the same config always has the same id.

    The hash is of the trial's canonical JSON (keys sorted, no spaces). Fields at their
    default value are left out (``name``, which picks the variant, always stays), so a field
    added to dd later with a default that keeps the old behaviour leaves the ids of stored
    trials, and so their results, valid.

    Configs are frozen, so the id, and each part's canonical text, is remembered for the
    object once computed (``_Known``): a million-trial grid, whose trials share their parts,
    hashes each part once. ``remember``: False for a trial about to be dropped.
    """
    cached = _recall(_IDS, trial)
    if cached is None:
        cached = _digest(_canonical(trial, keep=False))
        if remember:
            _remember(_IDS, trial, cached)
    return cached


class _Known(weakref.ref):
    """What was computed of one live config object, keyed by its ``id`` beside it (never
    written into it: configs are frozen) and forgotten when the object is: identity, not
    equality, so ``1`` and ``1.0`` (equal values, different JSON) never share a text."""

    __slots__ = ("key", "value", "table")


_IDS: dict[int, _Known] = {}  # id(trial) -> its trial id
_TEXTS: dict[int, _Known] = {}  # id(part) -> its canonical text


def _recall(table: dict[int, _Known], obj: Any) -> str | None:
    known = table.get(id(obj))
    return known.value if known is not None and known() is obj else None


def _remember(table: dict[int, _Known], obj: Any, value: str) -> str:
    try:
        known = _Known(obj, _forget)
    except TypeError:  # no weak references to it: not remembered
        return value
    known.key, known.value, known.table = id(obj), value, table
    table[known.key] = known
    return value


def _forget(known: _Known) -> None:
    if known.table.get(known.key) is known:
        del known.table[known.key]


def legacy_trial_id(trial: Trial) -> str:
    """The id dd gave ``trial`` before identity followed content: locations and file paths
    hashed as written, and a dataset's config as it was then filled in (``legacy_config``,
    where a kind defines one; nothing cached). Equal to ``trial_id`` for most trials."""
    legacy = getattr(trial.data, "legacy_config", None)
    if legacy is not None:
        trial = dataclasses.replace(trial, data=legacy())
    return _digest(_canonical(trial, keep=False, legacy=True))


def file_sha256(path: str, field: str = "path") -> str:
    """The SHA-256 of a file's bytes, read once per process for each (resolved path, size,
    modification time); ``field`` names the config field in the error for a missing file."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError as e:
        raise SpecError(field, f"{path}: cannot read it ({e.strerror or e})") from None
    return _file_sha256(str(resolved), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _file_sha256(resolved: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(resolved, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _canonical(obj: Any, keep: bool = True, legacy: bool = False, where: str = "") -> str:
    """``json.dumps(<obj without defaults>, sort_keys=True, separators=(",", ":"))``, built
    from the parts' texts (remembered for each part when ``keep``), locations left out and user
    files hashed (unless ``legacy``)."""
    if type(obj) is int:
        return str(obj)  # what json.dumps writes, faster
    cached = None if legacy else _recall(_TEXTS, obj)
    if cached is not None:
        return cached
    if not dataclasses.is_dataclass(obj):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"))
    parts = []
    for name, key, default, skippable, identity in _hashed_fields(type(obj), legacy):
        value = getattr(obj, name)
        if skippable and type(value) is type(default) and value == default:
            continue
        if identity == "content":
            parts.append(key + json.dumps(file_sha256(value, join(where, name))))
            continue
        known = None if legacy or type(value) is int else _recall(_TEXTS, value)
        parts.append(key + (known or _canonical(value, True, legacy, join(where, name))))
    text = "{" + ",".join(parts) + "}"
    if keep and not legacy:
        _remember(_TEXTS, obj, text)
    return text


@functools.cache
def _hashed_fields(cls: type, legacy: bool) -> tuple[tuple[str, str, Any, bool, Any], ...]:
    """The hashed fields of a config class in the order of their sorted keys: name,
    ``"key":``, default, whether it is left out at its default, and its identity."""
    rows = []
    for f in dataclasses.fields(cls):
        if f.metadata.get(IDENTITY) in ("program", "derived"):
            continue  # never hashed, nor into legacy ids (it came after them)
        identity = None if legacy else f.metadata.get(IDENTITY)
        if identity == "location":
            continue
        key = f"{f.name}_sha256" if identity == "content" else f.name
        skippable = f.name != "name" and f.init and f.default is not dataclasses.MISSING
        rows.append((key, (f.name, json.dumps(key) + ":", f.default, skippable, identity)))
    return tuple(row for _, row in sorted(rows, key=lambda r: r[0]))
