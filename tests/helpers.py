"""What several test files share: `python -m dd` in a fresh process, ending a process tree by
its ids, whether a GPU answers, and the tiny spec most tests sweep. Imported as ``helpers``
(pytest puts tests/ on sys.path for conftest.py)."""

from __future__ import annotations

import functools
import gzip
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def width_spec(widths, seeds):
    """A model-wise sweep of the MNIST-1D MLP over ``widths`` x ``seeds`` (never trained: the
    analysis tests give it synthetic rows, ``width_rows``)."""
    from dd.plan.sweep import parse_spec

    return parse_spec(
        {
            "name": "v",
            "data": {"name": "mnist1d", "n_train": 200},
            "model": {"name": "mlp", "width": widths[0]},
            "grid": {"model.width": list(widths), "seed": list(seeds)},
        }
    )


def width_rows(spec, test: dict, train: dict, epochs=None):
    """Rows of ``width_spec``'s trials: ``test[(width, seed)]`` is that trial's test error per
    evaluation (or its final one); ``train[width]`` its train error at every evaluation, one
    number for all seeds or a list by seed."""
    import pyarrow as pa

    from dd.spec.ids import trial_id

    records = []
    for t in spec.trials:
        values = np.atleast_1d(test[t.model.width, t.seed])
        at = epochs or list(range(1, len(values) + 1))
        fit = train[t.model.width]
        fit = fit[t.seed] if isinstance(fit, (list, tuple)) else fit
        for step, (epoch, value) in enumerate(zip(at, values, strict=True), start=1):
            records.append(
                {
                    "trial_id": trial_id(t),
                    "status": "ok",
                    "step": step,
                    "epoch": epoch,
                    "seed": t.seed,
                    "model_width": t.model.width,
                    "train_error": float(fit),
                    "test_error": float(value),
                }
            )
    return pa.Table.from_pylist(records)


TINY_GAUSSIAN = {
    "name": "tiny",
    "data": {"name": "gaussian", "dim": 20, "n_train": 10, "n_test": 500},
    "model": {"name": "raw_features", "n_features": 1},
    "grid": {"model.n_features": [2, 5, 8, 12, 15, 20], "seed": {"range": [0, 4]}},
}


CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "dd-test",
    "AWS_SECRET_ACCESS_KEY": "dd-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def dd_command(*args: str | Path) -> list[str]:
    """`python -m dd ARGS` with this interpreter: the venv's dd, and through PYTHONPATH
    (inherited by the process and its local Ray workers) the tree under test."""
    return [sys.executable, "-m", "dd", *map(str, args)]


def run_dd(
    *args: str | Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run dd to the end: text stdout and stderr captured, ``env`` on top of this process's
    environment, killed (and the test failed) after ``timeout`` seconds rather than hanging."""
    return subprocess.run(
        dd_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def start_dd(
    *args: str | Path, env: dict[str, str] | None = None, stderr: int = subprocess.PIPE
) -> subprocess.Popen:
    """Start dd in its own session, for a test that signals or kills it mid-run; end it with
    ``kill_tree`` so that its local Ray processes do not outlive the test."""
    return subprocess.Popen(
        dd_command(*args),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (children of children included)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it (listed first, so none is orphaned unseen)."""
    for p in [pid, *_descendants(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@functools.cache
def gpu_answers() -> bool:
    """Whether an NVIDIA GPU answers here (`nvidia-smi -L`): the Makefile's test for installing
    the CUDA build of JAX, so the tests expect what the install made of this machine. Asking
    JAX instead would claim the GPU for the pytest process."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    return subprocess.run([smi, "-L"], capture_output=True, timeout=60).returncode == 0


without_gpu = pytest.mark.skipif(
    gpu_answers(), reason="a GPU answers here; this test checks the path without one"
)


# Fabricated files in the published formats (IDX, CIFAR pickles) and stored sweeps.

RNG = np.random.default_rng(0)


def write_idx(path, magic, dims, payload, *, gz=False):
    raw = struct.pack(f">{1 + len(dims)}I", magic, *dims) + np.asarray(payload, np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_idx_dataset(directory, splits, *, gz=False):
    """Writes the four IDX files; ``splits`` maps ``train``/``t10k`` to (images N,H,W, labels)."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, (images, labels) in splits.items():
        write_idx(
            directory / f"{prefix}-images-idx3-ubyte{suffix}", 0x803, images.shape, images, gz=gz
        )
        write_idx(
            directory / f"{prefix}-labels-idx1-ubyte{suffix}", 0x801, labels.shape, labels, gz=gz
        )


def idx_split(n, side=4):
    return RNG.integers(0, 256, (n, side, side), dtype=np.uint8), RNG.integers(
        0, 10, n, dtype=np.uint8
    )


class Python2StylePickler(pickle._Pickler):
    """Writes protocol 2 as the published CIFAR files have it: Python 2 str opcodes for bytes and
    numpy 1.x global names. (Python 3's own protocol 2 adds a ``_codecs.encode`` global per bytes
    object, which the real files do not name and the reader rightly refuses.)"""

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch = {**pickle._Pickler.dispatch, bytes: save_bytes}


def write_pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        Python2StylePickler(file, protocol=2).dump(obj)
    return path


def cifar_batch(n, n_classes, labels_key=b"labels"):
    return {
        b"batch_label": b"fabricated",
        b"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8),
        labels_key: RNG.integers(0, n_classes, n).tolist(),
    }


def write_cifar10(data_dir, batches):
    """``batches`` maps file name to batch dict; every other CIFAR-10 file gets a small valid
    batch."""
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        write_pickle(
            data_dir / "cifar-10-batches-py" / name, batches.get(name) or cifar_batch(2, 10)
        )


def store_trials(
    root, mapping: dict, ids: list[str] | None = None, steps: int = 1, rows=None
) -> list[str]:
    """Store ``steps`` null-metric rows per trial of ``mapping`` (or ``rows(trial)``, a trial's
    fabricated rows; under ``ids``, default their ids) and the spec beside them, as a finished
    sweep leaves them; returns the ids used."""
    from dd.plan.sweep import parse_spec
    from dd.spec.ids import trial_id
    from dd.store.sweep import SweepStore

    spec = parse_spec(mapping)
    store = SweepStore(root, spec.name)
    ids = ids or [trial_id(t) for t in spec.trials]
    pack_rows = [rows(t) if rows else [{"step": s} for s in range(steps)] for t in spec.trials]
    write_fabricated_pack(store, f"p{len(store.pack_files())}", list(spec.trials), ids, pack_rows)
    store.write_spec(spec.mapping)
    return ids


def write_fabricated_pack(store, pack_id: str, trials: list, ids: list[str], rows: list) -> None:
    """Store one pack of ``trials`` (under ``ids``) with the fabricated ``rows`` of each, as a
    worker leaves it (no wall time, no JAX)."""
    from dd.store.schema import pack_table

    store.write_pack(
        pack_id,
        pack_table(
            sweep=store.name,
            pack_id=pack_id,
            trial_ids=ids,
            trials=trials,
            rows=rows,
            wall_time_s=0.0,
            jax_version="none",
        ),
    )


def tensorboard_events(path) -> list:
    """The Event records of one TensorBoard event file (TFRecord framing: length u64, its
    CRC, the bytes, their CRC), parsed with tensorboardX's protos."""
    import struct

    from tensorboardX.proto import event_pb2

    data, out, at = Path(path).read_bytes(), [], 0
    while at < len(data):
        (n,) = struct.unpack("<Q", data[at : at + 8])
        out.append(event_pb2.Event.FromString(data[at + 12 : at + 12 + n]))
        at += 12 + n + 4
    return out


def write_distribution(
    folder: Path, name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]
) -> Path:
    """An installed distribution as pip leaves one in a target folder, without pip: each of
    ``modules`` (file name -> source) and a ``<name>-0.dist-info`` declaring ``entry_points``
    (group -> {entry point: "module:object"}). Put ``folder`` on sys.path or PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    for file, source in modules.items():
        (folder / file).write_text(source)
    info = folder / f"{name}-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0\n")
    lines = [
        f"[{group}]\n" + "".join(f"{point} = {value}\n" for point, value in points.items())
        for group, points in entry_points.items()
    ]
    (info / "entry_points.txt").write_text("\n".join(lines))
    return folder


def store_packs(root, mapping: dict, steps: int = 3) -> list[str]:
    """Store each trial of ``mapping`` as a pack file of its own (``steps`` rows, with a
    ``test_mse`` that differs by trial and step) and the spec beside them, as a finished
    sweep of one-trial packs leaves them; returns the pack ids."""
    from dd.plan.sweep import parse_spec
    from dd.spec.ids import trial_id
    from dd.store.sweep import SweepStore

    spec = parse_spec(mapping)
    store = SweepStore(root, spec.name)
    ids = []
    for i, trial in enumerate(spec.trials):
        pack_id = f"{i:04d}"
        rows = [{"step": s, "test_mse": i + s / 10} for s in range(steps)]
        write_fabricated_pack(store, pack_id, [trial], [trial_id(trial)], [rows])
        ids.append(pack_id)
    store.write_spec(spec.mapping)
    return ids
