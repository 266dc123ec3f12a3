"""examples/own_model runs as its README says: data from the script, the user's own module,
through `dd sweep` on local Ray; one of its trials alone equals it inside a pack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import run_dd

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE = EXAMPLES / "own_model"


@pytest.fixture(scope="module")
def example_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("own_model") / "mnist1d.npz"
    subprocess.run(
        [sys.executable, str(EXAMPLE / "make_data.py"), str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(EXAMPLES)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        ),
    }


@pytest.mark.slow
@pytest.mark.ray
def test_the_example_sweeps_through_dd_sweep_on_ray(example_data, tmp_path):
    smoke = [
        "--set",
        f"data.path={example_data}",
        "--set",
        "train.epochs=2",
        "--set",
        "train.eval_points=2",
        "--set",
        "grid.model.width=[2, 6]",
        "--set",
        "grid.seed=[0, 1]",
        "--set",
        "data.n_train=200",
    ]
    done = run_dd(
        "sweep", EXAMPLE / "spec.yaml", "--results", tmp_path, "--cpus", "2", *smoke, env=_env()
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "own_mixer: ran 4 trials" in done.stderr and "figure: " in done.stdout
    query = run_dd(
        "query",
        "SELECT model_width, count(*) AS n FROM trials GROUP BY 1 ORDER BY 1",
        "--sweep",
        "own_mixer",
        "--results",
        tmp_path,
        "--format",
        "json",
        timeout=300,
    )
    assert query.returncode == 0, query.stderr
    assert [json.loads(line) for line in query.stdout.splitlines()] == [
        {"model_width": 2, "n": 2},
        {"model_width": 6, "n": 2},
    ]


@pytest.mark.slow
def test_an_example_trial_alone_equals_it_in_a_pack(example_data, monkeypatch):
    import yaml

    from dd.engine.train import train_pack
    from dd.plan.packs import make_packs
    from dd.plan.resolve import resolve
    from dd.plan.sweep import apply_overrides, parse_spec

    monkeypatch.syspath_prepend(str(EXAMPLES))
    mapping = apply_overrides(
        yaml.safe_load((EXAMPLE / "spec.yaml").read_text()),
        [
            f"data.path={example_data}",
            "train.epochs=3",
            "train.eval_points=2",
            "grid.model.width=[4]",
            "grid.seed=[0, 1]",
            "grid.data.n_train=[200, 300]",
            "grid.train.lr=[0.003, 0.001]",
        ],
    )
    spec = resolve(parse_spec(mapping))
    (pack,) = make_packs(list(spec.trials), spec.resources)
    assert len(pack.trials) == 8
    key = pack.key
    together = train_pack(list(pack.trials), key)
    for i in (0, 5):
        alone = train_pack([pack.trials[i]], key)[0]
        for row_alone, row_pack in zip(alone, together[i], strict=True):
            for metric, value in row_alone.items():
                np.testing.assert_allclose(
                    row_pack[metric], value, rtol=2e-5, atol=1e-6, err_msg=f"trial {i} {metric}"
                )
