"""The shipped epoch-wise sweep shows test loss falling, rising and falling again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dd.plan.sweep import load_spec
from dd.run.execute import run_sweep
from dd.store.sweep import SweepStore

SPEC = Path(__file__).parents[2] / "sweeps" / "epochwise_linear.yaml"


def test_shipped_epochwise_sweep_descends_twice_in_the_stored_rows(ray_local, tmp_path):
    spec = load_spec(SPEC)
    report = run_sweep(spec, tmp_path, quiet=True)
    assert report.trials_run == len(spec.trials) and not report.failed_packs
    table = SweepStore(tmp_path, spec.name).read_results()
    epochs = np.array(table["epoch"].to_pylist())
    loss = np.array(table["test_mse"].to_pylist())
    xs = np.unique(epochs)
    curve = np.array([loss[epochs == e].mean() for e in xs])
    first_min = int(np.argmin(curve[: np.argmax(curve)]))
    peak = first_min + int(np.argmax(curve[first_min:]))
    end = curve[-1]
    assert 0 < first_min < peak < len(xs) - 1, (xs[first_min], xs[peak])
    assert curve[0] - curve[first_min] >= 0.10 * curve[0], "first descent"
    assert curve[peak] - curve[first_min] >= 0.10 * curve[first_min], "ascent"
    assert curve[peak] - end >= 0.10 * curve[peak], "second descent"
    assert end < curve[first_min], "the second descent goes below the first minimum"
