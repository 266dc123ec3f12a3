"""A sweep's packs in flight: which process runs each (``running/pack-<id>.json``, with its
progress) and its rows so far (``partial/pack-<id>.parquet``).

A partial file is live while its pack runs: its running record is there and its process is
not known to be gone. The worker removes the record when the pack ends (finished or failed),
the driver removes every record when its run starts and when it ends (cancelled, failed or
interrupted included), and a record of a process gone on this host counts as stale; the
partial rows of a pack that stopped without finishing are then stale, never results.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from dd.store.paths import StorePath, atomic_write_bytes, write_parquet

PACK_GLOB = "pack-*.parquet"


class LivePacks:
    """The running records and partial files of ``SweepStore`` (a mixin: it reads the
    store's ``dir``, ``packs_dir``, ``_read``, ``readable``, ``_records`` and
    ``finished_pack_ids``)."""

    dir: StorePath
    packs_dir: StorePath

    def partial_path(self, pack_id: str) -> StorePath:
        return self.dir / "partial" / f"pack-{pack_id}.parquet"

    def write_partial(self, pack_id: str, table: pa.Table) -> None:
        """A running pack's rows so far (``partial`` true), replaced atomically at each write.
        Resume never reads them: a trial is stored only once its pack's final file is."""
        write_parquet(self.partial_path(pack_id), table)

    def drop_partial(self, pack_id: str) -> None:
        """Remove a pack's partial file: the pack starts (again), its old rows are void."""
        self.partial_path(pack_id).unlink(missing_ok=True)

    def partial_files(self) -> list[StorePath]:
        """The partial files of running packs: no final file yet (a finished pack's partial
        file, left by a crash between the two writes, is superseded) and a running record
        whose process is not known to be gone. Rows of any other partial file are stale
        (``stale_partial_files``), never results (docs/faults.md)."""
        live = self._live_pack_ids()
        return self.readable([p for p in self._unfinished_partials() if _pack_id(p) in live])

    def stale_partial_files(self) -> list[StorePath]:
        """The partial files of packs that stopped without finishing (failed, cancelled,
        killed, their node lost): no final file and no live running record."""
        live = self._live_pack_ids()
        return [p for p in self._unfinished_partials() if _pack_id(p) not in live]

    def stale_trial_ids(self) -> set[str]:
        """The trials whose rows so far lie in stale partial files (rerun to finish them)."""
        ids: set[str] = set()
        for path in self.stale_partial_files():
            table = self._read(path, ["trial_id"])
            if table is not None:
                ids.update(table.column("trial_id").unique().to_pylist())
        return ids

    def drop_stale_partials(self) -> list[StorePath]:
        """Remove the partial files no running pack writes (stale or superseded); the driver
        does it once its run is under way, its packs rerunning the stale ones' trials."""
        folder = self.dir / "partial"
        if not folder.is_dir():
            return []
        live = set(self.partial_files())
        dropped = [p for p in sorted(folder.glob(PACK_GLOB)) if p not in live]
        for path in dropped:
            path.unlink(missing_ok=True)
        return dropped

    def _unfinished_partials(self) -> list[StorePath]:
        folder = self.dir / "partial"
        if not folder.is_dir():
            return []
        finished = self.finished_pack_ids()
        return [p for p in sorted(folder.glob(PACK_GLOB)) if _pack_id(p) not in finished]

    def _live_pack_ids(self) -> set[str]:
        """Packs with a running record whose process is alive or on another host."""
        return {r.get("pack_id") for r in self.running_packs() if r["stale"] is not True}

    # ---- packs in flight
    @contextmanager
    def running(self, pack_id: str, **about: Any):
        """Record which process runs a pack (``running/pack-<id>.json``, with ``about`` it)
        while it runs, for ``dd status`` and for operators; a dead worker's record is
        overwritten by its retry. Yields ``update(**progress)``, which rewrites the record
        with the pack's progress (epoch reached, errors, rate, ETA), unless the driver has
        removed it meanwhile (it stopped the pack); ``started_at`` is the wall clock
        (``time.time()``) at its start, for the sweep's ETA (``dd.run.eta``)."""
        path = self.dir / "running" / f"pack-{pack_id}.json"
        record = {
            "pack_id": pack_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "started_at": time.time(),
            **about,
        }
        atomic_write_bytes(path, json.dumps(record).encode())

        def update(**progress: Any) -> None:
            record.update(progress)
            if path.exists():  # a record the driver removed (the pack was stopped) stays gone
                atomic_write_bytes(path, json.dumps(record).encode())

        try:
            yield update
        finally:
            path.unlink(missing_ok=True)

    def running_record(self, pack_id: str) -> dict[str, Any] | None:
        """A running pack's record (its progress), None if there is none (or unreadable)."""
        found = self._records(self.dir / "running", f"pack-{pack_id}.json")
        return found[0] if found else None

    def clear_running(self, pack_id: str) -> None:
        """Drop a pack's running record (its worker was stopped and cannot)."""
        (self.dir / "running" / f"pack-{pack_id}.json").unlink(missing_ok=True)

    def clear_running_records(self) -> None:
        """Drop every running record: the driver's run starts or ends, so no pack of the
        sweep runs (their partial rows become stale)."""
        folder = self.dir / "running"
        if folder.is_dir():
            for record in folder.glob("pack-*.json"):
                record.unlink(missing_ok=True)

    def running_packs(self) -> list[dict[str, Any]]:
        """The running records, each with ``stale``: True when its process, on this host,
        is gone (a killed driver's workers leave their records), None for another host."""
        return [{**r, "stale": _stale(r)} for r in self._records(self.dir / "running")]

    # ---- the running driver
    def write_driver(self, record: dict[str, Any]) -> None:
        """The running driver's progress (``running/driver.json``: the sweep's ETA, packs
        done and running; ``dd.run.execute``), with its process, for ``dd status``, the
        handle and the live report."""
        record = {"pid": os.getpid(), "host": socket.gethostname(), **record}
        atomic_write_bytes(self.dir / "running" / "driver.json", json.dumps(record).encode())

    def driver_record(self) -> dict[str, Any] | None:
        """The running driver's record with ``stale`` (as ``running_packs``), None if none."""
        found = self._records(self.dir / "running", "driver.json")
        return {**found[0], "stale": _stale(found[0])} if found else None

    def clear_driver(self) -> None:
        (self.dir / "running" / "driver.json").unlink(missing_ok=True)


def _pack_id(path: StorePath) -> str:
    return path.name[len("pack-") : -len(".parquet")]


def _stale(record: dict[str, Any]) -> bool | None:
    if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return None
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
