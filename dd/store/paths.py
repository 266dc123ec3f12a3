"""Files on a local folder or an object store: the ``pathlib`` subset the store uses, atomic
writes and Parquet reads, so local and remote results roots share one code path.

The results root is a local folder or a URI that ``pyarrow.fs`` opens (``s3://``, ``gs://``,
``file://``; an S3-compatible endpoint as ``s3://bucket/prefix?endpoint_override=host:port&
scheme=http``, credentials from the usual environment). A remote root is a ``RemotePath``:
workers on other machines write their packs there directly, each to a temporary key that is
then moved into place, and the driver, ``dd status``, ``dd curves`` and ``dd query`` read it.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dd.spec.errors import StoreError


class RemotePath:
    """A file or folder on a ``pyarrow.fs`` filesystem (an object store): the part of the
    ``pathlib.Path`` interface that dd's store uses, so local and remote roots share code."""

    def __init__(self, fs: pafs.FileSystem, path: str, scheme: str):
        self.fs, self.path, self.scheme = fs, path.rstrip("/"), scheme

    def __truediv__(self, part: str) -> RemotePath:
        return RemotePath(self.fs, f"{self.path}/{part}", self.scheme)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}"

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RemotePath) and (self.fs, self.path) == (other.fs, other.path)

    def __hash__(self) -> int:
        return hash(self.path)

    def __lt__(self, other: RemotePath) -> bool:
        return self.path < other.path

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> RemotePath:
        return RemotePath(self.fs, self.path.rsplit("/", 1)[0], self.scheme)

    def _type(self) -> pafs.FileType:
        return self.fs.get_file_info(self.path).type

    def exists(self) -> bool:
        return self._type() != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._type() == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._type() == pafs.FileType.Directory

    def iterdir(self) -> list[RemotePath]:
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        return [
            RemotePath(self.fs, info.path, self.scheme) for info in self.fs.get_file_info(selector)
        ]

    def glob(self, pattern: str) -> list[RemotePath]:
        return [p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern)]

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        self.fs.create_dir(self.path, recursive=parents)

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def replace(self, target: RemotePath) -> RemotePath:
        self.fs.move(self.path, target.path)
        return target

    def write_atomic(self, payload: bytes) -> None:
        """Write to a temporary key beside this one, then move it here: readers never see a
        part (an object store's move is a copy then a delete of the temporary key)."""
        tmp = self.parent / f".tmp-{self.name}-{uuid.uuid4().hex[:12]}"
        try:
            with self.fs.open_output_stream(tmp.path) as f:
                f.write(payload)
            tmp.replace(self)
        finally:
            tmp.unlink(missing_ok=True)


StorePath = Path | RemotePath


def as_store_path(location: str | Path | RemotePath) -> StorePath:
    """A local path, or a ``RemotePath`` for a URI (``file://`` URIs are local paths)."""
    if isinstance(location, (Path, RemotePath)):
        return location
    text = str(location)
    if "://" not in text:
        return Path(text)
    scheme = text.split("://", 1)[0]
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as e:
        raise StoreError(
            f"--results {text}: not a results location pyarrow.fs can open ({e}); "
            "give a folder or an s3://, gs:// or file:// URI"
        ) from None
    if isinstance(fs, pafs.LocalFileSystem):
        return Path(path)
    return RemotePath(fs, path, scheme)


def atomic_write_bytes(path: StorePath, payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``path``, fsync it, then rename it over
    (on an object store: a temporary key, then a move).

    Readers see the old file or the whole new one, never a part; a failure leaves no file.
    """
    if isinstance(path, RemotePath):
        try:
            path.write_atomic(payload)
        except OSError as e:
            raise StoreError(f"{path}: cannot write ({e})") from None
        return
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


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def write_parquet(path: StorePath, table: pa.Table) -> None:
    """``table`` as a Parquet file at ``path``, atomically."""
    atomic_write_bytes(path, parquet_bytes(table))


def read_metadata(path: StorePath) -> pq.FileMetaData:
    if isinstance(path, RemotePath):
        with path.fs.open_input_file(path.path) as f:
            return pq.read_metadata(f)
    return pq.read_metadata(path)


def read_parquet(path: StorePath, columns: list[str] | None = None) -> pa.Table:
    if isinstance(path, RemotePath):
        return pq.read_table(path.path, columns=columns, filesystem=path.fs)
    return pq.read_table(path, columns=columns)


@contextmanager
def exclusive_lock(path: Path, busy: Callable[[str], Exception]) -> Iterator[None]:
    """Hold an flock on the local file ``path`` (made if need be), which says who holds it;
    the kernel releases it when the holder exits or is killed, so a crash never leaves it
    held. Held by another process: ``busy(who holds it)`` is raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as e:
        raise StoreError(f"{path}: cannot create the lock ({e.strerror or e})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise busy(handle.read().strip() or "another process") from None
        handle.seek(0)
        handle.truncate()
        when = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {when}")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the flock
