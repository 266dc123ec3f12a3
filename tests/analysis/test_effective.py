"""Effective parameters (Curth et al. 2023): a double descent in the raw feature count of a
two-axis random-feature model folds back into a U against p_eff measured on test inputs."""

from __future__ import annotations

import numpy as np
import pytest

from dd.analysis.aggregate import write_curves
from dd.models.fourier import PcaFourierFeatures, featurize, principal_axes
from dd.plan.sweep import parse_spec
from dd.run.execute import run_sweep
from dd.spec.errors import SpecError
from dd.store.sweep import SweepStore

N_TRAIN = 24
PATH = {
    "model.pca_components": [1, 2, 4, 8, 12, 16, 20, 24, 24, 24, 24, 24, 24, 24],
    "model.n_features": [1, 2, 4, 8, 12, 16, 20, 24, 27, 32, 48, 96, 200, 400],
}


@pytest.fixture(scope="module")
def uturn(ray_local, tmp_path_factory):
    spec = parse_spec(
        {
            "name": "uturn",
            "data": {"name": "digits", "n_train": N_TRAIN},
            "model": {"name": "pca_fourier_features", "n_features": 1, "pca_components": 1},
            "grid": {"zip": [PATH], "seed": {"range": [0, 4]}},
            "curves": {
                "x": "model.n_features",
                "threshold_metric": "train_mse",
                "threshold_tol": 1e-6,
            },
        }
    )
    store = SweepStore(tmp_path_factory.mktemp("uturn"), spec.name)
    run_sweep(spec, store.root, quiet=True)
    aggregate = write_curves(store, spec)
    return store, aggregate


def _effective(store) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(store.dir / "curves" / "effective_parameters.parquet")
    return {c: table[c].to_numpy() for c in ("x", "p_eff_test", "test_mse", "test_error")}


def test_the_zipped_axis_is_a_coordinate_of_the_path_not_a_series(uturn):
    _, aggregate = uturn
    (model_wise,) = [c for c in aggregate.curves if c.kind == "model_wise"]
    assert model_wise.series == ()
    assert model_wise.landmarks["threshold_x"].to_pylist() == [N_TRAIN]


def test_raw_count_shows_a_double_descent_peaking_at_the_threshold(uturn):
    store, aggregate = uturn
    e = _effective(store)
    peak = int(np.argmax(e["test_mse"]))
    assert e["x"][peak] == N_TRAIN
    first_min = e["test_mse"][:peak].min()
    assert e["test_mse"][peak] > 10 * first_min, "a real peak, not noise"
    assert e["test_mse"][-1] < e["test_mse"][peak] / 10, "and a second descent"
    assert any(p.name == "effective_parameters.png" for p in aggregate.figures)


def test_against_effective_parameters_the_second_descent_retraces_the_rising_arm(uturn):
    store, _ = uturn
    e = _effective(store)
    peak = int(np.argmax(e["x"] == N_TRAIN))
    pca, excess = slice(0, peak + 1), slice(peak, None)
    # p_eff_test grows with the principal components up to the threshold, then falls back as
    # excess features are added: the path turns round in p_eff ...
    assert np.all(np.diff(e["p_eff_test"][pca]) > 0)
    assert np.all(np.diff(e["p_eff_test"][excess]) < 0)
    assert e["p_eff_test"][-1] < e["p_eff_test"][peak] / 30
    # ... and along the way back the test loss falls with p_eff, as on the rising arm of a
    # classical U: the second descent is the same arm walked back, not a new regime.
    for metric in ("test_mse", "test_error"):
        back = e[metric][excess]
        assert np.all(np.diff(back) < 0), metric
    # the U's two arms: the excess branch sits next to the principal-component branch at
    # equal p_eff (within a factor 1.5 of the loss interpolated along the rising arm)
    rising = slice(int(np.argmin(e["test_mse"][pca])), peak + 1)
    arm_p, arm_loss = e["p_eff_test"][rising], e["test_mse"][rising]
    for p, loss in zip(e["p_eff_test"][excess], e["test_mse"][excess], strict=True):
        if arm_p[0] <= p <= arm_p[-1]:
            on_arm = np.exp(np.interp(np.log(p), np.log(arm_p), np.log(arm_loss)))
            assert on_arm / 1.5 < loss < on_arm * 1.5, (p, loss, on_arm)


def test_pca_features_project_on_the_leading_principal_axes():
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 3.0, 1.0, 0.2])
    x = rng.normal(size=(4000, 4)) * scales @ np.linalg.qr(rng.normal(size=(4, 4)))[0]
    axes = np.asarray(principal_axes(x, 2))
    variances = np.var((x - x.mean(0)) @ axes, axis=0)
    np.testing.assert_allclose(variances, scales[:2] ** 2, rtol=0.1)
    model = PcaFourierFeatures(n_features=5, pca_components=2)
    phi = np.asarray(featurize(model, {"pca": axes, "v": rng.normal(size=(4, 2))}, x))
    assert phi.shape == (4000, 5)
    np.testing.assert_allclose(phi[:, :2], x @ axes, rtol=1e-5)
    assert np.abs(phi[:, 2:]).max() <= 1.0, "the rest are cos/sin features"


@pytest.mark.parametrize(
    "model, data, field",
    [
        ({"pca_components": 6, "n_features": 5}, {"name": "digits"}, "model.pca_components"),
        ({"pca_components": 70, "n_features": 80}, {"name": "digits"}, "model.pca_components"),
        ({"pca_components": 2, "n_features": 5}, {"name": "gaussian", "dim": 10}, "model.name"),
    ],
)
def test_bad_pca_settings_name_the_field(model, data, field):
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        parse_spec(
            {"name": "bad", "data": data, "model": {"name": "pca_fourier_features", **model}}
        )
