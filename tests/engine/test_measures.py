"""Per-evaluation measures (dd.models.measures): the modular progress measures give the numbers
they gave when the engine computed them itself, and a measure registered from outside dd (here,
from this test module) is computed in a pack's evaluation and stored as a column."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pytest

from dd.engine.train import train_pack
from dd.models import measures
from dd.models.measures.base import Measure, View
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from dd.spec.errors import SpecError
from dd.store.schema import METRICS, pack_table

TRAIN = {"optimizer": "adamw", "lr": 5e-3, "batch_size": "full", "epochs": 4, "eval_points": 2}
MODULAR = {
    "mlp_add": {
        "data": {"name": "modular", "p": 11, "op": "x+y", "train_fraction": 0.5},
        "model": {"name": "mlp", "width": 16, "depth": 1, "activation": "quadratic"},
    },
    "tf_sub": {
        "data": {"name": "modular", "p": 7, "op": "x-y", "train_fraction": 0.6},
        "model": {"name": "transformer", "width": 8, "depth": 1, "heads": 2, "d_mlp": 16},
    },
}
# Trial 1's row at epoch 4 of each pack, computed by dd at commit 66c4c5c (before the measures
# moved out of the engine into dd.models.measures), on this CPU build of JAX.
PINNED = {
    "mlp_add": {
        "test_loss": 2.460061550140381,
        "noisy_true_acc": 0.25,
        "fourier_gini": 0.10944139957427979,
        "fourier_norms": [
            0.7486303448677063,
            1.7113873958587646,
            1.66447913646698,
            1.7191119194030762,
            1.8835318088531494,
            1.871342658996582,
        ],
        "key_freqs": [4, 5, 3, 1, 2],
        "restricted_loss": 2.4076411724090576,
        "excluded_loss": 2.3469483852386475,
        "grad_symmetricity": 1.0,
        "distance_irrelevance": 0.9548031687736511,
    },
    "tf_sub": {
        "test_loss": 2.1119046211242676,
        "noisy_true_acc": 0.0,
        "fourier_gini": 0.10328900814056396,
        "fourier_norms": [
            1.0976547002792358,
            1.8868409395217896,
            1.7204527854919434,
            1.9600929021835327,
        ],
        "key_freqs": [3, 1, 2, 0],
        "restricted_loss": 2.0288453102111816,
        "excluded_loss": 1.9640779495239258,
        "grad_symmetricity": 0.9713505506515503,
        "distance_irrelevance": 0.305876225233078,
    },
}


def _pack_rows(spec_dict: dict):
    spec = parse_spec(spec_dict)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    return pack, train_pack(list(pack.trials), pack.key)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["mlp_add", "tf_sub"])
def test_modular_progress_measures_are_the_numbers_pinned_before_they_moved(case):
    _, rows = _pack_rows(
        {
            "name": case,
            **MODULAR[case],
            "train": TRAIN,
            "grid": {"seed": [0, 1], "data.label_noise": [0.0, 0.1]},
        }
    )
    row = rows[1][-1]
    assert row["epoch"] == 4
    for metric, value in PINNED[case].items():
        if isinstance(value, list) and isinstance(value[0], int):
            assert row[metric] == value, metric
        else:
            # pinned before the program-width ladder, whose padded program rounds the last
            # float32 digits differently (1e-6 relative); the move itself changed nothing
            np.testing.assert_allclose(row[metric], value, rtol=1e-5, err_msg=metric)
    assert row["n_key_freqs"] == len(PINNED[case]["key_freqs"])
    assert "layer_norms" not in row, "asked for by neither the data kind nor the spec"


def squared_logit_mean(view: View) -> dict:
    """A measure from outside dd: the mean squared logit over the replica's training rows."""
    x = view.data.x_pool_PD[view.setup.index_N]
    logits = view.logits(view.params, x)
    mask = view.setup.mask_N[:, None]
    return {"sq_logit": jnp.sum(mask * logits**2) / jnp.sum(mask) / logits.shape[1]}


SQ_LOGIT = Measure(
    name="sq_logit",
    columns={"sq_logit": (pa.float64(), "mean squared logit over the training rows (a test)")},
    compute=f"{__name__}:squared_logit_mean",
)


@pytest.fixture
def registered_sq_logit():
    remove = measures.register(SQ_LOGIT)
    yield
    remove()


@pytest.mark.slow
def test_a_measure_registered_outside_dd_is_a_column_of_a_packs_rows(registered_sq_logit):
    assert METRICS["sq_logit"][0] == pa.float64()
    spec = {
        "name": "measured",
        "data": {"name": "modular", "p": 5, "op": "x/y"},
        "model": {"name": "mlp", "width": 8, "depth": 2},
        "train": TRAIN | {"measures": "sq_logit, layer_norms"},
        "grid": {"seed": [0, 1]},
    }
    pack, rows = _pack_rows(spec)
    table = pack_table(
        sweep="measured",
        pack_id="p0",
        trial_ids=["a", "b"],
        trials=list(pack.trials),
        rows=rows,
        wall_time_s=0.0,
        jax_version="x",
    )
    assert table.schema.field("sq_logit").type == pa.float64()
    values = table.column("sq_logit").to_pylist()
    assert all(v is not None and v > 0 for v in values)
    assert values[1] != values[3], "each replica measured on its own parameters"
    norms = table.column("layer_norms").to_pylist()
    assert all(len(n) == 3 and min(n) > 0 for n in norms), "hidden_0, hidden_1, logits"
    assert table.column("fourier_gini").null_count == 0, "the data kind's own measures stay"
    assert table.column("restricted_loss").null_count == len(table), "x/y has no sum directions"


def test_an_unknown_measure_is_a_one_line_error_naming_the_field():
    spec = parse_spec(
        {
            "name": "bad",
            **MODULAR["tf_sub"],
            "train": TRAIN | {"measures": "layer_norms,hessian_trace"},
        }
    )
    with pytest.raises(SpecError, match="train.measures.*unknown measure 'hessian_trace'"):
        measures.check(spec.trials[0])
