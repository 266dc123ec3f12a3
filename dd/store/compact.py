"""Merged pack files: many small finished packs rewritten as a few large Parquet files, so that
reading a sweep (``dd query``, ``dd curves``, ``dd status``) opens a few files, not thousands.

Layout: ``<sweep>/merged/merged-<id>.parquet``, rows sorted by ``trial_id`` and ``step`` (each
row keeps its ``pack_id``), whose footer metadata (``dd.merged``) names the packs it holds. The
file says itself what it covers, so writing it (to a temporary name, then a rename or an object
store's move) is the one step that commits a merge. A merge is three steps:

1. ``merge_packs``: read the packs, write the merged file (nothing is committed before its
   rename: a crash leaves a temporary file, removed by the next driver, ``dd compact``);
2. the merged file exists: every reader reads it and skips the packs it covers, which are still
   there (a crash here leaves both; readers read each row once);
3. ``drop_merged_packs``: remove the covered packs (a crash midway leaves some; the next
   ``dd sweep`` or ``dd compact`` removes them first).

So a crash at any point loses nothing, and the next writing command finishes the merge.

Readers take a snapshot (``ResultFiles.result_files``): the pack files listed first, then the
merged files and what they cover, so a pack merged meanwhile is found in its merged file; a
file that is gone when read (merged and removed after the snapshot) makes the reader take a
new snapshot and read what it adds (``read_snapshot``): each row is read once.

A merged file whose footer does not read is quarantined like a damaged pack; it covers nothing
after, so its trials run again, or its packs, if still there, are read.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable

import pyarrow as pa

from dd.store.paths import StorePath, read_metadata, write_parquet

MERGED_GLOB = "merged-*.parquet"
META_KEY = b"dd.merged"
COMPACT_AFTER = 16  # the driver merges its sweep's packs after a run once there are this many
COMPACT_DURING = 256  # ... and while it runs, once this many small packs are stored
MERGE_ROWS = 500_000  # rows at most in one merged file written at once (its memory) ...
MERGE_PACKS = 1000  # ... and packs at most (each read table costs memory beside its rows)
SNAPSHOTS = 5  # snapshots a reader takes at most while merges remove the files it lists


def pack_id_of(path: StorePath) -> str:
    return path.name[len("pack-") : -len(".parquet")]


class ResultFiles:
    """The merged files of ``SweepStore`` and the snapshot readers take (a mixin: it reads
    the store's ``dir``, ``packs_dir``, ``pack_files``, ``partial_files``, ``_read`` and
    ``_quarantine``)."""

    dir: StorePath
    packs_dir: StorePath

    @property
    def merged_dir(self) -> StorePath:
        return self.dir / "merged"

    def merged_files(self) -> dict[StorePath, tuple[str, ...]]:
        """Each readable merged file and the pack ids it holds; one whose footer does not
        read is quarantined (its packs, if still there, are read instead)."""
        folder = self.merged_dir
        if not folder.is_dir():
            return {}
        found = {}
        for path in sorted(folder.glob(MERGED_GLOB)):
            try:
                found[path] = _covered(path)
            except FileNotFoundError:
                continue  # quarantined meanwhile by another reader
            except (pa.ArrowInvalid, pa.ArrowIOError, OSError, KeyError, ValueError) as e:
                self._quarantine(path, e)
        return found

    def result_files(self, partial: bool = False) -> list[StorePath]:
        """The files that hold the sweep's stored rows, each row in one of them: the merged
        files and the packs they do not cover (listed before the merged files, so a pack
        merged meanwhile is covered); with ``partial``, running packs' partial files too."""
        packs = self.pack_files()
        merged = self.merged_files()
        covered = {pack for packs_of in merged.values() for pack in packs_of}
        files = list(merged) + [p for p in packs if pack_id_of(p) not in covered]
        return files + (self.partial_files() if partial else [])

    def finished_pack_ids(self) -> set[str]:
        """The ids of the packs whose final rows are stored, in a pack or a merged file."""
        ids = {pack_id_of(p) for p in self.pack_files()}
        return ids.union(*self.merged_files().values())

    def read_snapshot(
        self, columns: list[str] | None = None, partial: bool = False
    ) -> list[pa.Table]:
        """The tables of ``result_files``, each row once though merges run meanwhile: a file
        gone when read (merged and removed, or quarantined) makes a new snapshot, whose new
        files are read and whose dropped ones' tables are dropped."""
        tables: dict[StorePath, pa.Table | None] = {}
        for _ in range(SNAPSHOTS):
            files = self.result_files(partial)
            tables = {p: t for p, t in tables.items() if p in files and t is not None}
            for path in files:
                if path not in tables:
                    tables[path] = self._read(path, columns)
            if all(t is not None for t in tables.values()):
                break
        return [t for t in tables.values() if t is not None]


def _covered(path: StorePath) -> tuple[str, ...]:
    about = json.loads(read_metadata(path).metadata[META_KEY])
    packs = about["packs"]
    if not isinstance(packs, list) or not all(isinstance(p, str) for p in packs):
        raise ValueError(f"{META_KEY.decode()}: packs is not a list of pack ids")
    return tuple(packs)


def drop_merged_packs(store) -> int:
    """Step 3: remove the pack files that a merged file holds; returns how many. Also what a
    crash after step 2 left (call under the driver lock)."""
    covered = {pack for packs in store.merged_files().values() for pack in packs}
    dropped = 0
    for path in store.pack_files():
        if pack_id_of(path) in covered:
            path.unlink(missing_ok=True)
            dropped += 1
    return dropped


def merge_packs(store, files: list[StorePath]) -> StorePath | None:
    """Steps 1 and 2: the rows of the pack ``files`` as one merged file, sorted by trial and
    step, its footer naming the packs; None when no pack read (damaged ones are quarantined
    by ``_read``). The packs stay: ``drop_merged_packs`` removes them."""
    tables, packs = [], []
    for path in files:
        table = store._read(path)
        if table is not None:
            tables.append(table)
            packs.append(pack_id_of(path))
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="permissive")
    table = table.sort_by([("trial_id", "ascending"), ("step", "ascending")])
    about = json.dumps({"packs": packs, "rows": table.num_rows}).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: about})
    digest = hashlib.sha256(",".join(sorted(packs)).encode()).hexdigest()[:16]
    path = store.merged_dir / f"merged-{digest}.parquet"
    store.merged_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(path, table)
    return path


def compact(store, at_least: int = 2, say: Callable[[str], None] | None = None) -> int:
    """Merge the sweep's unmerged packs (when there are ``at_least``) into merged files of at
    most ``MERGE_ROWS`` rows and ``MERGE_PACKS`` packs each, then remove them; first finish
    what a crash left. Returns how many packs were merged. Call under the driver lock
    (``compact_locked`` takes it): one merge at a time per sweep."""
    drop_merged_packs(store)  # a merge that crashed after its merged file was written
    files = store.pack_files()
    if len(files) < at_least:
        return 0
    merged, batch, rows = 0, [], 0
    for path in files:
        batch.append(path)
        rows += _rows(path)
        if rows >= MERGE_ROWS or len(batch) >= MERGE_PACKS:
            merged += _merge(store, batch)
            batch, rows = [], 0
    if batch:
        merged += _merge(store, batch)
    if merged and say is not None:
        say(f"{store.name}: {merged} pack files merged into {store.merged_dir}")
    return merged


def _merge(store, batch: list[StorePath]) -> int:
    if merge_packs(store, batch) is None:
        return 0
    return drop_merged_packs(store)


def _rows(path: StorePath) -> int:
    try:
        return read_metadata(path).num_rows
    except (pa.ArrowInvalid, OSError):
        return 0  # damaged: merge_packs quarantines it


def compact_locked(store) -> int:
    """``compact`` under the sweep's driver lock (refused while a driver runs the sweep)."""
    with store.driver_lock():
        return compact(store, say=lambda line: print(line, file=sys.stderr))
