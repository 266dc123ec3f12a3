"""One trial, one set of numbers: a trial's rows do not depend on the other trials of its sweep
(the program width is the trial's own rung, its initial draw is at its own width) and say
which program width ran it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dd.engine.data import load_dataset
from dd.engine.device_data import draw_setups, to_device
from dd.engine.evaluate import EVAL_CHUNK
from dd.engine.padding import unpad
from dd.engine.step import Program, init_replicas
from dd.engine.train import replica_values, train_pack
from dd.models.registry import program_trial
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from dd.spec.ids import trial_id
from dd.store.schema import pack_table
from dd.store.sweep import SweepStore

SPEC = {
    "name": "identity",
    "data": {"name": "mnist1d", "n_train": 200, "train_pool": 200, "n_test": 300},
    "model": {"name": "mlp", "depth": 2, "width": 47},
    "train": {
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "batch_size": 50,
        "epochs": 30,
        "eval_points": 4,
    },
}


def _packs(widths: list[int], seeds: list[int]):
    spec = parse_spec({**SPEC, "grid": {"model.width": widths, "seed": seeds}})
    return make_packs(list(spec.trials), spec.resources)


def _pack_of(packs, width: int, seed: int):
    for pack in packs:
        for r, trial in enumerate(pack.trials):
            if trial.model.width == width and trial.seed == seed:
                return pack, r
    raise AssertionError(f"no trial of width {width}, seed {seed}")


def test_a_trials_program_width_does_not_depend_on_its_sweep():
    alone, _ = _pack_of(_packs([47], [0]), 47, 0)
    for widths in ([2, 12, 47, 61, 80, 300], [47, 48], [3, 47, 104]):
        inside, _ = _pack_of(_packs(widths, [0, 1]), 47, 0)
        assert inside.key == alone.key, widths
    assert alone.key.model.width >= 47


@pytest.mark.slow
def test_a_trial_alone_and_inside_a_sweep_of_other_widths_stores_the_same_rows_bit_for_bit():
    """30 epochs of the MNIST-1D MLP at width 47, seed 1: alone, and inside a sweep of
    narrower and wider trials (in one pack with its program's other widths and seeds): the
    same rows bit for bit, NaN for NaN. Same program, same initial draw, and on CPU the pack
    maps its replicas instead of vmapping them (a vmapped pack rounded differently from a lone
    replica, 2e-7 relative in train loss; before the ladder: another program width and draw,
    percent-level differences)."""
    lone_pack, _ = _pack_of(_packs([47], [1]), 47, 1)
    (alone,) = train_pack(list(lone_pack.trials), lone_pack.key)
    sweep_pack, r = _pack_of(_packs([5, 21, 47, 61, 80], [0, 1, 2]), 47, 1)
    assert len(sweep_pack.trials) > 1 and {t.model.width for t in sweep_pack.trials} != {47}
    assert trial_id(sweep_pack.trials[r]) == trial_id(lone_pack.trials[0])
    inside = train_pack(list(sweep_pack.trials), sweep_pack.key)[r]
    assert [row["epoch"] for row in alone] == [row["epoch"] for row in inside]
    assert alone[-1]["epoch"] == 30 and sweep_pack.key == lone_pack.key
    for a, b in zip(alone, inside, strict=True):
        assert a.keys() == b.keys()
        for metric in a:  # a NaN equals a NaN here
            np.testing.assert_array_equal(b[metric], a[metric], err_msg=metric)


def _initial_params(program_width: int, width: int, seed: int):
    """The initial parameters of the width-``width`` trial (seed ``seed``) drawn inside a
    program of ``program_width``, cut back to the trial's own shapes."""
    spec = parse_spec({**SPEC, "grid": {"model.width": [width], "seed": [seed]}})
    (trial,) = spec.trials
    key = program_trial(trial)
    key = key.__class__(**{**key.__dict__, "model": key.model.program(program_width)})
    data = to_device(load_dataset(key.data), key.data, EVAL_CHUNK)
    program = Program(key, trial.data.n_train, 10, False)
    v = replica_values([trial])
    setups = draw_setups(
        data, v["seed"], v["n_train"], v["label_noise"], v["lr"], v["weight_decay"], n_rows=200
    )
    replicas = init_replicas(program, data, setups, jnp.asarray(v["width"]))
    params = jax.tree.map(lambda a: np.asarray(a[0]), replicas.params)
    return unpad(key, params, width)


@pytest.mark.slow
def test_the_initial_draw_is_at_the_trials_own_width_whatever_its_program():
    """Width 47 drawn in a 47-, 64- and 80-wide program: the same numbers, and zero past them."""
    own = _initial_params(47, 47, 3)
    for wide in (64, 80):
        placed = _initial_params(wide, 47, 3)
        jax.tree.map(np.testing.assert_array_equal, placed, own)
    assert float(np.var(own["hidden_1"]["kernel"])) == pytest.approx(1 / 47, rel=0.2)


@pytest.mark.slow
def test_rows_record_the_program_width():
    pack, r = _pack_of(_packs([5, 47], [0]), 5, 0)
    rows = train_pack(list(pack.trials), pack.key)
    assert pack.key.model.width > 5
    assert {row["program_width"] for trial_rows in rows for row in trial_rows} == {
        pack.key.model.width
    }
    table = pack_table(
        sweep="identity",
        pack_id=pack.id,
        trial_ids=list(pack.trial_ids),
        trials=list(pack.trials),
        rows=rows,
        wall_time_s=1.0,
        jax_version=jax.__version__,
    )
    assert set(table.column("program_width").to_pylist()) == {pack.key.model.width}


def test_a_store_written_before_program_width_reads_it_as_null(tmp_path):
    store = SweepStore(tmp_path, "old")
    store.packs_dir.mkdir(parents=True, exist_ok=True)
    old = pa.table({"trial_id": ["t0"], "step": [1], "test_error": [0.5]})
    pq.write_table(old, store.packs_dir / "pack-aaaa.parquet")
    table = store.read_results()
    assert table.column("program_width").to_pylist() == [None]
