"""The softmax-collapse measure (issue 31): the fraction of real training rows whose float32
softmax probability of their label is exactly 1."""

from __future__ import annotations

from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest

from dd.models import measures
from dd.models.measures.base import View
from dd.models.measures.softmax_collapse import compute


@pytest.mark.slow
def test_softmax_collapse_counts_the_real_rows_whose_label_probability_is_exactly_one():
    setup = SimpleNamespace(
        x_ND=jnp.asarray([[100.0, 0.0], [1.0, 0.0], [0.0, 100.0], [50.0, 0.0], [0.0, 3.0]]),
        y_N=jnp.asarray([0, 0, 1, 1, 1]),
        mask_N=jnp.asarray([True, True, True, True, False]),
    )
    data = SimpleNamespace(x_pool_PD=None)
    view = View(None, 1.0, lambda params, x: params * x, None, data, setup, None, {})
    # rows 0 and 2 round to 1; row 1 (0.73) and row 3 (label 1: e^-50) do not; row 4 is padding
    np.testing.assert_allclose(compute(view)["softmax_collapse"], 2 / 4)
    assert "softmax_collapse" in measures.columns()
