"""dd export tensorboard: every trial's evaluations as TensorBoard scalars, read back from
the event files (TFRecord framing, tensorboardX's Event protos)."""

from __future__ import annotations

import numpy as np
import pytest

from dd.cli import main
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from dd.run.worker import run_pack
from dd.store.sweep import SweepStore
from helpers import tensorboard_events

SPEC = {
    "name": "tb",
    "data": {"name": "digits", "n_train": 100},
    "model": {"name": "mlp", "width": 4},
    "train": {"batch_size": 50, "epochs": 3, "eval_points": 3},
    "grid": {"seed": [0, 1]},
}


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
    seeds = dict(zip(rows["trial_id"].to_pylist(), rows["seed"].to_pylist(), strict=True))
    for tid, seed in seeds.items():
        (events_file,) = (out / f"seed={seed}").glob("events.out.tfevents.*")
        scalars: dict[str, dict[int, float]] = {}
        for event in tensorboard_events(events_file):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
        mine = rows.filter(np.asarray(rows["trial_id"].to_pylist()) == tid).to_pylist()
        assert sorted(scalars["test_error"]) == [r["step"] for r in mine]
        for r in mine:
            np.testing.assert_allclose(scalars["test_error"][r["step"]], r["test_error"], rtol=1e-6)
            np.testing.assert_allclose(scalars["train_loss"][r["step"]], r["train_loss"], rtol=1e-6)


def _store_version(root, grid, epochs) -> list[str]:
    """Fabricated rows (no training) of one version of a sweep: 3 evaluations a trial."""
    from dd.spec.ids import trial_id
    from dd.store.schema import pack_table

    spec = parse_spec({**SPEC, "train": {**SPEC["train"], "epochs": epochs}, "grid": grid})
    store = SweepStore(root, "tb")
    ids = [trial_id(t) for t in spec.trials]
    pack = f"p{epochs}"
    rows = [
        [
            {"step": 2 * e, "epoch": e, "n_params": 100 * t.model.width,
             "test_error": 0.5 - 0.01 * e - 0.001 * t.model.width, "train_error": 0.1 / e}
            for e in range(1, 4)
        ]
        for t in spec.trials
    ]  # fmt: skip
    table = pack_table(sweep="tb", pack_id=pack, trial_ids=ids, trials=list(spec.trials),
                       rows=rows, wall_time_s=0.0, jax_version="none")  # fmt: skip
    store.write_pack(pack, table)
    store.write_spec(spec.mapping)
    from dd.plan.states import store_plan

    store_plan(store, spec, [])
    return ids


def _runs(out) -> dict[str, list]:
    return {
        str(f.parent.relative_to(out)): events
        for f in sorted(out.rglob("events.out.tfevents.*"))
        if (events := tensorboard_events(f))
    }


@pytest.mark.slow
def test_runs_are_named_by_their_swept_values_with_hparams_and_the_current_spec_only(
    tmp_path, capsys
):
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    root = tmp_path / "r"
    _store_version(root, {"model.width": [4, 8], "seed": [0]}, epochs=2)  # an earlier version
    _store_version(root, {"model.width": [4, 8], "seed": [0, 1]}, epochs=3)  # the current one
    out = tmp_path / "tb"
    assert main(["export", "tensorboard", "tb", str(out), "--results", str(root)]) == 0
    assert capsys.readouterr().out.startswith("4 trials written to")
    runs = _runs(out)
    names = {n for n in runs if n != "."}
    assert names == {f"model.width={w},seed={s}" for w in (4, 8) for s in (0, 1)}, names
    events = runs["model.width=8,seed=1"]
    values = [(e.step, v) for e in events for v in e.summary.value]
    scalars = {v.tag for _, v in values if v.HasField("simple_value")}
    assert {"test_error", "train_error"} <= scalars and not scalars & {"n_params", "epoch"}
    start = next(v for _, v in values if v.tag == "_hparams_/session_start_info")
    assert start.metadata.plugin_data.plugin_name == "hparams"
    hparams = HParamsPluginData.FromString(start.metadata.plugin_data.content)
    got = {k: v.number_value for k, v in hparams.session_start_info.hparams.items()}
    assert got == {"model.width": 8.0, "seed": 1.0, "n_params": 800.0, "epoch": 3.0}, got
    final = {v.tag: v.simple_value for _, v in values if v.tag.startswith("final/")}
    assert final["final/test_error"] == pytest.approx(0.5 - 0.03 - 0.008)
    experiment = next(v for e in runs["."] for v in e.summary.value)
    assert experiment.tag == "_hparams_/experiment"
    info = HParamsPluginData.FromString(experiment.metadata.plugin_data.content).experiment
    assert {m.name.tag for m in info.metric_infos} >= {"final/test_error", "final/train_error"}
    assert {h.name for h in info.hparam_infos} == {"model.width", "seed", "n_params", "epoch"}
    texts = [v for _, v in values if v.metadata.plugin_data.plugin_name == "text"]
    assert texts and b"n_params" in texts[0].tensor.string_val[0]
    other = tmp_path / "all"
    assert main(["export", "tensorboard", "tb", str(other), "--all", "--results", str(root)]) == 0
    assert capsys.readouterr().out.startswith("6 trials written to")
    assert len([n for n in _runs(other) if n != "."]) == 6, "the earlier trials get their id"
