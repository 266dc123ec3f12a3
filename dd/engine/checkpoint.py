"""A training pack's checkpoints, and trained parameters kept per trial.

Both are Flax msgpack (``flax.serialization``) written atomically through the store, so a
crash mid-write leaves the previous file, and both work on local folders and results URIs. A
checkpoint carries a checksum (``dd.store.checked``): one damaged after it was written, or an
older dd's without one, is ignored and its pack trains from the start.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import flax.serialization
import jax
import numpy as np

from dd.engine.step import Replica
from dd.store.checked import read_checked, write_checked
from dd.store.paths import as_store_path, atomic_write_bytes


def save(path: Path, replicas: Replica, epoch: int, rows: list) -> None:
    """The whole state of a pack (parameters, optimizer state, step counts, divergence flags)
    after ``epoch``, with the rows measured so far."""
    meta = json.dumps({"epoch": epoch, "rows": rows}).encode()
    payload = flax.serialization.to_bytes(
        {"replicas": replicas, "meta": np.frombuffer(meta, np.uint8)}
    )
    write_checked(path, payload)


def restore(path: Path, template: Replica, n_trials: int) -> tuple[Replica, int, list]:
    """The saved (state, epoch, rows), or the fresh ``template`` if the file does not fit."""
    try:
        state = flax.serialization.from_bytes(
            {"replicas": template, "meta": np.zeros(0, np.uint8)}, read_checked(path)
        )
        meta = json.loads(bytes(np.asarray(state["meta"], np.uint8)))
        if len(meta["rows"]) != n_trials:
            raise ValueError("the checkpoint holds another pack")
        shapes = [(np.shape(a), np.asarray(a).dtype) for a in jax.tree.leaves(state["replicas"])]
        if shapes != [(np.shape(a), np.asarray(a).dtype) for a in jax.tree.leaves(template)]:
            raise ValueError("the checkpoint holds another program's shapes or dtypes")
    except (OSError, ValueError, KeyError, TypeError) as e:  # Damaged: a ValueError
        print(
            f"warning: ignoring checkpoint {path} ({e}); training from the start", file=sys.stderr
        )
        return template, 0, [[] for _ in range(n_trials)]
    return state["replicas"], meta["epoch"], meta["rows"]  # host arrays


def save_params(path: Path, params) -> None:
    """A trial's trained parameters as Flax msgpack, atomically."""
    atomic_write_bytes(path, flax.serialization.to_bytes(params))


def load_params(path: str | Path) -> dict:
    """Parameters saved by a sweep with ``train.save_params``: the nested dict of arrays that
    the trial's module (``dd.models.registry.make_model(trial)``) applies. ``path`` is
    ``<sweep>/params/<trial_id>.msgpack``, a local path or a results URI."""
    return flax.serialization.msgpack_restore(as_store_path(path).read_bytes())
