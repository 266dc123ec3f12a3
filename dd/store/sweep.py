"""Where a sweep's results live, and the only code that writes or reads them.

Layout of ``<results>/<sweep>/``::

    spec.yaml                 the spec as loaded (the current plan: curves use its trials)
    packs/pack-<id>.parquet   one file per finished pack, written to a temporary name, renamed
    merged/merged-<id>.parquet many finished packs' rows in one file, which names them; the
                              packs are removed after (``dd.store.compact``)
    failed/pack-<id>.json     why a pack failed (removed when it later succeeds)
    running/pack-<id>.json    which process runs a pack, while it runs, and its progress
    partial/pack-<id>.parquet a running pack's rows so far (column partial true); stale once
                              the pack stopped without finishing (``partial_files``)
    profiles/pack-<id>.json   where a pack's time went (dd.engine.profile)
    checkpoints/              training state of unfinished packs (resources.checkpoint_every)
    params/<trial id>.msgpack trained parameters (train.save_params)
    driver.lock               held (flock) by the driver running the sweep
    corrupt/                  damaged files moved aside (packs, partial rows, profiles, run
                              records), never read again
    runs/run-<time>-<pid>.json one record per finished driver run (its wall time, trials run)
    curves/, figures/         the aggregator's output
    report.html               the report (``dd report``)
    logs/ray-<time>-<pid>.log  Ray's own messages during a driver run (unless --debug)

A trial is done when its rows are in a readable pack or merged file; resuming runs the planned trial
ids minus the stored ones. Nothing here unpickles: specs are YAML, failures JSON. Profiles,
run records and checkpoints carry a checksum (``dd.store.checked``); one that does not check
is quarantined like an unreadable Parquet file.

The results root is a local folder or an object-store URI (``dd.store.paths``); every path
under it is built here, so readers and writers elsewhere ask the store where a file goes.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute  # pa.compute
import yaml

from dd.spec.errors import DDError, StoreError
from dd.spec.fields import check_name
from dd.store.compact import ResultFiles, drop_merged_packs
from dd.store.live import PACK_GLOB, LivePacks
from dd.store.paths import (
    RemotePath,
    StorePath,
    as_store_path,
    atomic_write_bytes,
    exclusive_lock,
    read_metadata,
    read_parquet,
    write_parquet,
)
from dd.store.records import Records
from dd.store.schema import with_meta, wrong_column

REWRITE = "run 'dd sweep SPEC_FILE' to store it again, or give the spec file instead of the name"


def first_line(error: Exception) -> str:
    """An error in one line: a YAML error's problem and where, else its first line."""
    mark = getattr(error, "problem_mark", None)
    if isinstance(error, yaml.MarkedYAMLError) and error.problem and mark is not None:
        return f"{error.problem} at line {mark.line + 1}, column {mark.column + 1}"
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class SweepStore(LivePacks, Records, ResultFiles):
    """The results directory of one sweep (its packs in flight: ``dd.store.live``; its JSON
    records: ``dd.store.records``; its merged files: ``dd.store.compact``)."""

    def __init__(self, root: str | Path | RemotePath, name: str):
        self.name = check_name(name, "sweep")
        self.location = str(root)  # what a worker on another machine opens again
        self.root = as_store_path(root)
        if isinstance(self.root, Path):
            self.location = str(self.root.resolve())
        self.dir = self.root / self.name
        self.packs_dir = self.dir / "packs"
        self.failed_dir = self.dir / "failed"
        self.checkpoints_dir = self.dir / "checkpoints"

    # ---- the driver lock
    @contextmanager
    def driver_lock(self):
        """Hold the sweep for one driver; a second one is refused with who holds it.

        An flock on ``driver.lock``: the kernel releases it when the holder exits or is
        killed, so a crashed driver never leaves the sweep locked. While it is held, no other
        driver writes here, so leftover temporary files and running records are stale and
        are removed. An object store cannot hold an flock: for a remote root the lock file is
        local (in the temporary folder, named by the sweep's URI), so it keeps out a second
        driver on the same machine only.
        """
        path = self.dir / "driver.lock"
        fresh = isinstance(self.dir, Path) and not self.dir.exists()
        if isinstance(self.dir, RemotePath):
            digest = hashlib.sha1(f"{self.location}/{self.name}".encode()).hexdigest()[:16]
            path = Path(tempfile.gettempdir()) / f"dd-driver-{digest}.lock"

        def busy(holder: str) -> StoreError:
            return StoreError(
                f"{self.dir}: another driver is running this sweep ({holder}); "
                "wait for it or stop it first"
            )

        try:
            with exclusive_lock(path, busy):
                self._clear_leftovers()
                yield
        finally:
            if fresh and [p.name for p in self.dir.iterdir()] == ["driver.lock"]:
                try:  # a refused first run leaves no sweep directory behind
                    path.unlink()
                    self.dir.rmdir()
                except OSError:
                    pass  # another driver came in meanwhile: the directory is its now

    def _clear_leftovers(self) -> None:
        """Remove what a crashed driver's run left: temporary files, running records and the
        packs a merge had written to a merged file but not yet removed."""
        for folder in (
            self.dir,
            self.packs_dir,
            self.merged_dir,
            self.failed_dir,
            *(
                self.dir / sub
                for sub in ("running", "checkpoints", "params", "runs", "curves", "figures")
            ),
        ):
            if folder.is_dir():
                for tmp in folder.glob(".tmp-*"):
                    tmp.unlink(missing_ok=True)
                    print(f"removed a stale temporary file {tmp}", file=sys.stderr)
        self.clear_running_records()
        self.clear_driver()
        drop_merged_packs(self)

    # ---- where each file goes
    @property
    def spec_path(self) -> StorePath:
        return self.dir / "spec.yaml"

    def checkpoint_path(self, pack_id: str) -> StorePath:
        """A training pack's checkpoint (``resources.checkpoint_every``)."""
        return self.checkpoints_dir / f"pack-{pack_id}.msgpack"

    def params_path(self, trial_id: str) -> StorePath:
        """A trial's trained parameters (``train.save_params``)."""
        return self.dir / "params" / f"{trial_id}.msgpack"

    def curve_path(self, name: str) -> StorePath:
        """A curve table of the aggregator, ``curves/<name>.parquet``."""
        return self.dir / "curves" / f"{name}.parquet"

    def figure_path(self, name: str) -> StorePath:
        """A figure of the aggregator, ``figures/<name>`` (the name with its suffix)."""
        return self.dir / "figures" / name

    @property
    def report_path(self) -> StorePath:
        return self.dir / "report.html"

    def ray_log_path(self) -> Path:
        """Where a driver run of this process writes Ray's own messages
        (``dd.run.cluster.route_ray_output``): ``logs/ray-<time>-<pid>.log`` in a local sweep;
        a local file in the temporary folder for an object-store root (a log is appended to)."""
        name = f"ray-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        if isinstance(self.dir, Path):
            return self.dir / "logs" / name
        return Path(tempfile.gettempdir()) / "dd-logs" / f"{self.name}-{name}"

    # ---- spec
    def write_spec(self, mapping: dict) -> None:
        atomic_write_bytes(self.spec_path, yaml.safe_dump(mapping, sort_keys=False).encode())

    def read_spec_mapping(self) -> dict:
        path = self.spec_path
        try:
            return yaml.safe_load(path.read_text())
        except FileNotFoundError:
            packs = len(self.result_files())
            if packs:
                raise StoreError(
                    f"{self.dir}: spec.yaml is missing though {packs} pack files "
                    "are stored; give the sweep's spec file instead of its name "
                    "(e.g. 'dd status path/to/spec.yaml')"
                ) from None
            raise DDError(  # an unknown sweep name is bad input: exit 2
                f"{self.dir}: no sweep here (spec.yaml missing); "
                f"run 'dd sweep' first or pass --results"
            ) from None
        except (OSError, ValueError, yaml.YAMLError) as e:  # ValueError: not UTF-8
            raise StoreError(
                f"{path}: unreadable stored spec ({first_line(e)}); {REWRITE}"
            ) from None

    # ---- packs
    def pack_path(self, pack_id: str) -> StorePath:
        return self.packs_dir / f"pack-{pack_id}.parquet"

    def write_pack(self, pack_id: str, table: pa.Table) -> StorePath:
        """The pack's final file; it supersedes the pack's partial rows (removed after)."""
        path = self.pack_path(pack_id)
        write_parquet(path, table)
        self.partial_path(pack_id).unlink(missing_ok=True)
        self.clear_failure(pack_id)
        return path

    def pack_files(self) -> list[StorePath]:
        return sorted(self.packs_dir.glob(PACK_GLOB)) if self.packs_dir.is_dir() else []

    def readable_pack_files(self) -> list[StorePath]:
        """The readable files of the stored rows, merged files included (``result_files``)."""
        return self.readable(self.result_files())

    def readable(self, files: list[StorePath]) -> list[StorePath]:
        """The ``files`` whose Parquet footer reads; the others are quarantined (``_read``),
        so that readers which scan files themselves (``dd query``) see what the rest see."""
        kept = []
        for path in files:
            try:
                wrong = wrong_column(read_metadata(path).schema.to_arrow_schema())
                if wrong is not None:
                    raise pa.ArrowInvalid(wrong)
                kept.append(path)
            except FileNotFoundError:
                continue  # a running pack's partial file, superseded meanwhile
            except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
                self._quarantine(path, e)
        return kept

    def _read(self, path: StorePath, columns: list[str] | None = None) -> pa.Table | None:
        """Read one pack file; a corrupt one is moved to corrupt/ with a warning."""
        try:
            table = read_parquet(path, columns)
            wrong = wrong_column(table.schema)
            if wrong is not None:
                raise pa.ArrowInvalid(wrong)
            return table
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
            self._quarantine(path, e)
            return None

    def _quarantine(
        self,
        path: StorePath,
        error: Exception,
        what: str = "not a readable Parquet file",
        after: str = "its trials will run again",
    ) -> None:
        """Move a damaged file to corrupt/ and say so in one line (``error`` cut to its first
        line), or say that it could not be moved and is ignored."""
        if not path.exists():
            return  # merged and removed meanwhile, or another reader moved it first
        reason = first_line(error)
        if path.parent.name == "partial" and after == "its trials will run again":
            after = "a running pack's rows so far, written again at its next evaluation point"
        target = self.dir / "corrupt" / f"{path.name}.{int(time.time())}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)
        except FileNotFoundError:
            return  # another reader moved it first
        except OSError as e:
            print(f"warning: {path} is {what} ({reason}); ignored ({e})", file=sys.stderr)
            return
        print(f"warning: {path} is {what} ({reason}); moved to {target}; {after}", file=sys.stderr)

    def stored_trial_ids(self) -> set[str]:
        ids: set[str] = set()
        for table in self.read_snapshot(["trial_id"]):
            ids.update(table.column("trial_id").unique().to_pylist())
        return ids

    def stored_and_diverged(self) -> tuple[set[str], set[str]]:
        """The stored trial ids, and those whose rows say ``diverged`` (done: a diverged run
        is a result), from one read of the files."""
        stored: set[str] = set()
        diverged: set[str] = set()
        for table in self.read_snapshot(["trial_id", "status"]):
            stored.update(table.column("trial_id").unique().to_pylist())
            rows = table.filter(pa.compute.equal(table["status"], "diverged"))
            diverged.update(rows.column("trial_id").unique().to_pylist())
        return stored, diverged

    def read_results(self, partial: bool = False) -> pa.Table | None:
        """All stored rows of the sweep (None if nothing is stored yet); with ``partial``,
        the rows so far of running packs too (their ``partial`` column true). Rows come in
        trial and step order, however the files hold them (merged or not: ``dd.store.compact``),
        so that sums over them, and the curves, do not change when packs are merged."""
        tables = self.read_snapshot(partial=partial)
        if not tables:
            return None
        table = pa.concat_tables(tables, promote_options="permissive")
        return with_meta(table.sort_by([("trial_id", "ascending"), ("step", "ascending")]))

    def prune_checkpoints(self, planned: set[str]) -> list[StorePath]:
        """Remove the checkpoints that no pack reads: those of packs neither in ``planned``
        (the ids of the packs still to run) nor stored (``keep_checkpoints`` keeps those). A
        changed spec regroups its trials into packs of new ids, so an interrupted run's
        checkpoints would otherwise stay forever. Call under the driver lock."""
        folder = self.checkpoints_dir
        if not folder.is_dir():
            return []
        keep = planned | self.finished_pack_ids()
        removed = []
        for path in folder.glob("pack-*.msgpack"):
            if path.name[len("pack-") : -len(".msgpack")] not in keep:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def sweep_names(root: str | Path | RemotePath) -> list[str]:
    """The sweeps stored under ``root``: its folders that hold a ``spec.yaml``."""
    root = as_store_path(root)
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if d.is_dir() and (d / "spec.yaml").is_file())
