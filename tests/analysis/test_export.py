"""dd export tensorboard: every trial's evaluations as TensorBoard scalars, read back from
the event files (TFRecord framing, tensorboardX's Event protos)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from dd.cli import main
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from dd.run.worker import run_pack
from dd.store.sweep import SweepStore

SPEC = {
    "name": "tb",
    "data": {"name": "digits", "n_train": 100},
    "model": {"name": "mlp", "width": 4},
    "train": {"batch_size": 50, "epochs": 3, "eval_points": 3},
    "grid": {"seed": [0, 1]},
}


def _events(path) -> list:
    """The Event records of one event file: length (u64), its CRC, the bytes, their CRC."""
    data, out, at = path.read_bytes(), [], 0
    while at < len(data):
        (n,) = struct.unpack("<Q", data[at : at + 8])
        out.append(event_pb2.Event.FromString(data[at + 12 : at + 12 + n]))
        at += 12 + n + 4
    return out


@pytest.mark.slow
def test_every_trial_becomes_a_run_whose_scalars_equal_the_stored_rows(tmp_path, capsys):
    spec = parse_spec(SPEC)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    store = SweepStore(tmp_path / "r", "tb")
    store.write_spec(spec.mapping)
    run_pack("tb", str(tmp_path / "r"), pack, spec.resources)
    out = tmp_path / "tb"
    assert main(["export", "tensorboard", "tb", str(out), "--results", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.startswith("2 trials written to")
    rows = store.read_results()
    for tid in set(rows["trial_id"].to_pylist()):
        (events_file,) = (out / tid).glob("events.out.tfevents.*")
        scalars: dict[str, dict[int, float]] = {}
        for event in _events(events_file):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
        mine = rows.filter(np.asarray(rows["trial_id"].to_pylist()) == tid).to_pylist()
        assert sorted(scalars["test_error"]) == [r["step"] for r in mine]
        for r in mine:
            np.testing.assert_allclose(scalars["test_error"][r["step"]], r["test_error"], rtol=1e-6)
            np.testing.assert_allclose(scalars["train_loss"][r["step"]], r["train_loss"], rtol=1e-6)
