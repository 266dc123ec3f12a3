"""A sweep's JSON records: driver runs, pack profiles and failures
(``SweepStore`` holds them through this mixin, which keeps ``dd.store.sweep`` short).

Profiles and run records are checked files (``dd.store.checked``): a damaged one is
quarantined, never read. Running records (``dd.store.live``) live only while their pack runs,
and failure records are read for their reason alone; both stay plain JSON.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from dd.store.checked import NUMBER, Damaged, read_record, write_checked
from dd.store.paths import StorePath, atomic_write_bytes

PROFILE_FIELDS = {
    "pack_id": str,
    "phases": dict,
    "programs_compiled": int,
    "bytes_to_device": NUMBER,
    "bytes_to_host": NUMBER,
}
RUN_FIELDS = {"wall_time_s": NUMBER}


class Records:
    """The records part of ``SweepStore`` (which gives ``dir``, ``failed_dir`` and
    ``_quarantine``)."""

    # ---- driver runs
    def write_run(self, record: dict[str, Any]) -> None:
        name = f"run-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.json"
        write_checked(self.dir / "runs" / name, json.dumps(record).encode())

    def runs(self) -> list[dict[str, Any]]:
        """The driver runs' records; a damaged one is quarantined (``_checked_records``)."""
        return self._checked_records(self.dir / "runs", "run-*.json", RUN_FIELDS)

    def _checked_records(
        self, folder: StorePath, pattern: str, fields: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The checked JSON records (``dd.store.checked``) in ``folder``; one that is
        truncated, garbled, without its checksum or of wrong types is moved to corrupt/
        with a one-line warning, never read."""
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob(pattern)):
            try:
                out.append(read_record(path, fields))
            except FileNotFoundError:
                continue  # removed meanwhile (a pack rerun, another reader's quarantine)
            except (OSError, Damaged) as e:
                self._quarantine(path, e, "a damaged record", "it is left out")
        return out

    def _records(self, folder: StorePath, pattern: str = "pack-*.json") -> list[dict[str, Any]]:
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob(pattern)):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return out

    # ---- profiles
    def write_profile(self, pack_id: str, record: dict[str, Any]) -> None:
        """Where a pack's time went (``dd.engine.profile``), ``profiles/pack-<id>.json``: the last
        run of each pack, kept with its results."""
        write_checked(self.dir / "profiles" / f"pack-{pack_id}.json", json.dumps(record).encode())

    def profiles(self) -> list[dict[str, Any]]:
        return self._checked_records(self.dir / "profiles", "pack-*.json", PROFILE_FIELDS)

    # ---- failures
    def write_failure(self, pack_id: str, trial_ids: list[str], reason: str) -> None:
        record = {
            "pack_id": pack_id,
            "trial_ids": trial_ids,
            "reason": reason,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_bytes(
            self.failed_dir / f"pack-{pack_id}.json", json.dumps(record, indent=1).encode()
        )

    def clear_failure(self, pack_id: str) -> None:
        try:
            (self.failed_dir / f"pack-{pack_id}.json").unlink()
        except FileNotFoundError:
            pass

    def failures(self) -> list[dict[str, Any]]:
        return self._records(self.failed_dir)
