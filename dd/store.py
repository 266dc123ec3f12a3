"""Where a sweep's results live, and the only code that writes or reads them.

Layout of ``<results>/<sweep>/``::

    spec.yaml                 the spec as loaded (the current plan: curves use its trials)
    packs/pack-<id>.parquet   one file per finished pack, written to a temporary name, renamed
    failed/pack-<id>.json     why a pack failed (removed when it later succeeds)
    running/pack-<id>.json    which process runs a pack, while it runs
    checkpoints/              training state of unfinished packs (resources.checkpoint_every)
    driver.lock               held (flock) by the driver running the sweep
    corrupt/                  unreadable pack files moved aside, never read as results
    curves/, figures/         the aggregator's output

A trial is done when its rows are in a readable pack file; resuming runs the planned trial
ids minus the stored ones. Nothing here unpickles: specs are YAML, failures JSON.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from dd.errors import StoreError
from dd.spec import check_name

PACK_GLOB = "pack-*.parquet"


def default_results_root() -> Path:
    """$DD_RESULTS, else ./results."""
    return Path(os.environ.get("DD_RESULTS") or "results")


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``path``, fsync it, then rename it over.

    Readers see the old file or the whole new one, never a part; a failure leaves no file.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes 0600; results are for every reader
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise StoreError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


class SweepStore:
    """The results directory of one sweep."""

    def __init__(self, root: str | Path, name: str):
        self.name = check_name(name, "sweep")
        self.root = Path(root)
        self.dir = self.root / self.name
        self.packs_dir = self.dir / "packs"
        self.failed_dir = self.dir / "failed"

    # ---- the driver lock
    @contextmanager
    def driver_lock(self):
        """Hold the sweep for one driver; a second one is refused with who holds it.

        An flock on ``driver.lock``: the kernel releases it when the holder exits or is
        killed, so a crashed driver never leaves the sweep locked. While it is held, no other
        driver writes here, so leftover temporary files and running records are stale and
        are removed.
        """
        path = self.dir / "driver.lock"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+")
        except OSError as e:
            raise StoreError(f"{path}: cannot create the driver lock ({e.strerror or e})") from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise StoreError(f"{self.dir}: another driver is running this sweep ({holder}); "
                                 "wait for it or stop it first") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
            handle.flush()
            self._clear_leftovers()
            yield
        finally:
            handle.close()  # closing releases the flock

    def _clear_leftovers(self) -> None:
        """Remove what a crashed driver's run left: temporary files and running records."""
        for folder in (self.dir, self.packs_dir, self.failed_dir, self.dir / "running",
                       self.dir / "checkpoints"):
            if folder.is_dir():
                for tmp in folder.glob(".tmp-*"):
                    tmp.unlink(missing_ok=True)
                    print(f"removed a stale temporary file {tmp}", file=sys.stderr)
        for record in (self.dir / "running").glob("pack-*.json"):
            record.unlink(missing_ok=True)

    # ---- spec
    def write_spec(self, mapping: dict) -> None:
        atomic_write_bytes(self.dir / "spec.yaml",
                           yaml.safe_dump(mapping, sort_keys=False).encode())

    def read_spec_mapping(self) -> dict:
        path = self.dir / "spec.yaml"
        try:
            return yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise StoreError(f"{self.dir}: no sweep here (spec.yaml missing); "
                             f"run 'dd sweep' first or pass --results") from None
        except (OSError, yaml.YAMLError) as e:
            raise StoreError(f"{path}: unreadable spec ({e})") from None

    # ---- packs
    def pack_path(self, pack_id: str) -> Path:
        return self.packs_dir / f"pack-{pack_id}.parquet"

    def write_pack(self, pack_id: str, table: pa.Table) -> Path:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        path = self.pack_path(pack_id)
        atomic_write_bytes(path, sink.getvalue().to_pybytes())
        self.clear_failure(pack_id)
        return path

    def pack_files(self) -> list[Path]:
        return sorted(self.packs_dir.glob(PACK_GLOB)) if self.packs_dir.is_dir() else []

    def _read(self, path: Path, columns: list[str] | None = None) -> pa.Table | None:
        """Read one pack file; a corrupt one is moved to corrupt/ with a warning."""
        try:
            return pq.read_table(path, columns=columns)
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
            target = self.dir / "corrupt" / f"{path.name}.{int(time.time())}"
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
            except OSError:
                return None
            print(f"warning: {path} is not a readable Parquet file ({e}); moved to {target}; "
                  "its trials will run again", file=sys.stderr)
            return None

    def stored_trial_ids(self) -> set[str]:
        ids: set[str] = set()
        for path in self.pack_files():
            table = self._read(path, ["trial_id"])
            if table is not None:
                ids.update(table.column("trial_id").unique().to_pylist())
        return ids

    def read_results(self) -> pa.Table | None:
        """All stored rows of the sweep (None if nothing is stored yet)."""
        tables = [t for t in (self._read(p) for p in self.pack_files()) if t is not None]
        if not tables:
            return None
        return pa.concat_tables(tables, promote_options="permissive")

    # ---- packs in flight
    @contextmanager
    def running(self, pack_id: str):
        """Record which process runs a pack (``running/pack-<id>.json``) while it runs, for
        ``dd status`` and for operators; a dead worker's record is overwritten by its retry."""
        path = self.dir / "running" / f"pack-{pack_id}.json"
        record = {"pack_id": pack_id, "pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_bytes(path, json.dumps(record).encode())
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def running_packs(self) -> list[dict[str, Any]]:
        return self._records(self.dir / "running")

    def _records(self, folder: Path) -> list[dict[str, Any]]:
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("pack-*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return out

    # ---- failures
    def write_failure(self, pack_id: str, trial_ids: list[str], reason: str) -> None:
        record = {"pack_id": pack_id, "trial_ids": trial_ids, "reason": reason,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_bytes(self.failed_dir / f"pack-{pack_id}.json",
                           json.dumps(record, indent=1).encode())

    def clear_failure(self, pack_id: str) -> None:
        try:
            (self.failed_dir / f"pack-{pack_id}.json").unlink()
        except FileNotFoundError:
            pass

    def failures(self) -> list[dict[str, Any]]:
        return self._records(self.failed_dir)
