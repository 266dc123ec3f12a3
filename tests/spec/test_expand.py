"""The streaming grid (``dd.spec.expand``): the trials, ids, packs and planned table it gives
equal those of the full expansion, every grid point built from scratch and held at once."""

import copy
import hashlib
import itertools
import pickle

import pyarrow as pa
import pytest

from dd.plan.packs import make_packs, pack_key, replicas_per_pack
from dd.plan.resolve import resolve, resolve_trials
from dd.plan.runners import runner_of
from dd.plan.states import planned_table
from dd.plan.sweep import parse_spec
from dd.run.schedule import plan
from dd.spec.config import Trial
from dd.spec.errors import SpecError
from dd.spec.expand import GridTrials, ids_of
from dd.spec.fields import build
from dd.spec.grid import expand_grid, set_dotted
from dd.spec.ids import trial_id
from dd.store.schema import flatten_config
from dd.store.sweep import SweepStore
from tests.helpers import TINY_GAUSSIAN

BASE = {  # small packs: each group is cut several times
    **{k: v for k, v in TINY_GAUSSIAN.items() if k != "grid"},
    "resources": {"max_pack": 3},
}
GRIDS = {
    "one_axis": {"seed": {"range": [0, 600]}},
    "product": {"model.n_features": [2, 5, 8], "fit.ridge": [0.0, 0.1], "seed": {"range": [0, 5]}},
    # the last point repeats the first: one trial, dropped where it repeats
    "zip": {"zip": [{"data.n_train": [10, 20, 10], "seed": [0, 1, 0]}], "fit.ridge": [0.0, 1.0]},
}
WIDTHS = {  # the width changes the pack key (the program's width); small packs cut groups
    "name": "widths",
    "data": {"name": "mnist1d", "n_train": 200},
    "model": {"name": "mlp", "width": 4},
    "grid": {"seed": {"range": [0, 7]}, "model.width": [4, 64, 512]},
    "resources": {"max_pack": 3},
}


def full_expansion(mapping: dict) -> list[Trial]:
    """Every grid point built from scratch (no shared parts), duplicates by id dropped."""
    base = {k: mapping[k] for k in ("seed", "data", "model", "fit", "train") if k in mapping}
    _, factors = expand_grid(mapping["grid"], True)
    points = [
        [dict(zip(f.names, row, strict=True)) for row in zip(*f.columns(), strict=True)]
        for f in factors
    ]
    trials: dict[str, Trial] = {}
    for combo in itertools.product(*points):
        raw = copy.deepcopy(base)
        for point in combo:
            for dotted, value in point.items():
                set_dotted(raw, dotted, value)
        trial = build(Trial, raw)
        trials.setdefault(trial_id(trial), trial)
    return list(trials.values())


def full_packs(trials, resources, planned=None) -> list[tuple]:
    """The packs as planned before the grid streamed: every planned trial held, each
    trial's pack key and id computed from it, each group's program and size from all of
    its trials."""
    todo = {trial_id(t) for t in trials}
    groups: dict[Trial, list[Trial]] = {}
    for t in planned if planned is not None else trials:
        groups.setdefault(pack_key(t), []).append(t)
    packs = []
    for erased, members in groups.items():
        key = runner_of(members[0]).program(erased, members)
        biggest = max(members, key=lambda t: t.data.n_train)
        size = replicas_per_pack(runner_of(biggest).sized(biggest, key), resources)
        for start in range(0, len(members), size):
            chunk = [t for t in members[start : start + size] if trial_id(t) in todo]
            if chunk:
                ids = tuple(trial_id(t) for t in chunk)
                digest = hashlib.sha256(",".join(sorted(ids)).encode()).hexdigest()[:16]
                packs.append(
                    (digest, ids, tuple(chunk), biggest.data.n_train, min(size, len(members)), key)
                )
    return packs


def packs_of(packs) -> list[tuple]:
    return [(p.id, p.trial_ids, p.trials, p.n_rows, p.n_replicas, p.key) for p in packs]


MAPPINGS = [{**BASE, "name": name, "grid": grid} for name, grid in GRIDS.items()] + [WIDTHS]


@pytest.mark.parametrize("mapping", MAPPINGS, ids=lambda m: m["name"])
def test_the_streaming_plan_equals_the_full_expansion(mapping, tmp_path):
    spec = parse_spec(copy.deepcopy(mapping))
    full = full_expansion(mapping)
    assert isinstance(spec.trials, GridTrials)
    assert len(spec.trials) == len(full)
    assert list(spec.trials) == full  # the same trials in the same order
    assert spec.trials == full and spec.trials == parse_spec(copy.deepcopy(mapping)).trials
    assert spec.trials != full[:-1] and spec.trials != full[::-1]
    assert pickle.loads(pickle.dumps(spec)).trials == full
    assert list(ids_of(spec.trials)) == [trial_id(t) for t in full]
    assert [spec.trials[i] for i in range(-len(full), 0)] == full
    assert spec.trials[1:4] == full[1:4]
    packs, stored = plan(spec, SweepStore(tmp_path, spec.name))
    assert stored == 0
    assert len(packs) > 1
    assert packs_of(packs) == full_packs(full, spec.resources)
    # a resumed sweep: its packs are cut over every planned trial, as the full expansion's
    half = full[::2]
    assert packs_of(make_packs(half, spec.resources, planned=spec.trials)) == full_packs(
        half, spec.resources, planned=full
    )
    if mapping is not WIDTHS:  # (a resolved trial holds its data's facts; ids unchanged)
        resolved = resolve(spec)
        assert list(resolved.trials) == resolve_trials(full)
        assert list(ids_of(resolved.trials)) == [trial_id(t) for t in full]
    table = planned_table(spec.trials, {trial_id(full[0])}, chunk=7)
    rows = [{"trial_id": trial_id(t), "stored": t is full[0], **flatten_config(t)} for t in full]
    assert table.equals(  # as the rows made from every trial, 7 at a time
        pa.concat_tables(
            [pa.Table.from_pylist(rows[i : i + 7]) for i in range(0, len(rows), 7)],
            promote_options="permissive",
        )
    )


def test_the_grid_tells_the_first_invalid_point():
    mapping = {**BASE, "grid": {"seed": [1, 2, -3, -4]}}
    with pytest.raises(SpecError, match=r"seed: must be >= 0 \(got -3\) \(grid point seed=-3\)"):
        parse_spec(mapping)


def test_a_resolved_grid_holds_its_data_facts(tmp_path):
    """A user's arrays are described at the resolve stage: the grid's trials, built again,
    hold the described data, as resolving every trial of the full expansion gives."""
    import numpy as np

    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.normal(size=(40, 3)).astype(np.float32),
        "y_train": rng.integers(0, 2, 40),
        "x_test": rng.normal(size=(10, 3)).astype(np.float32),
        "y_test": rng.integers(0, 2, 10),
    }
    np.savez(tmp_path / "data.npz", **arrays)
    mapping = {
        "name": "arrays",
        "data": {"name": "arrays", "path": str(tmp_path / "data.npz"), "n_train": 10},
        "model": {"name": "raw_features", "n_features": 2},
        "grid": {"data.n_train": [10, 20], "seed": {"range": [0, 3]}},
    }
    spec = parse_spec(copy.deepcopy(mapping))
    assert all(t.data.facts is None for t in spec.trials)
    resolved = resolve(spec).trials
    assert all(t.data.facts is not None for t in resolved)
    assert list(resolved) == resolve_trials(full_expansion(mapping))
    again = pickle.loads(pickle.dumps(resolved))  # (facts take no part in equality)
    assert again == resolved and [t.data.facts for t in again] == [t.data.facts for t in resolved]
    assert [t.data.facts for t in resolved] == [t.data.facts for t in resolve_trials(spec.trials)]
