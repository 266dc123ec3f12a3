"""Small sweeps the built-in curve kinds apply to (``CurveKind.tiny``): the per-kind tests
aggregate fabricated rows of each kind's own, so a kind from a plugin brings its case with it.
"""

from __future__ import annotations

FITTED = {
    "name": "fitted",
    "data": {"name": "gaussian", "dim": 20, "n_train": 10, "n_test": 100},
    "model": {"name": "raw_features", "n_features": 1},
    "grid": {"model.n_features": [2, 8, 20], "data.n_train": [8, 10], "seed": [0, 1]},
}
TRAINED = {
    "name": "trained",
    "data": {"name": "mnist1d", "n_train": 100},
    "model": {"name": "mlp", "width": 4},
    "train": {"batch_size": 50},
    "grid": {"model.width": [4, 16], "data.n_train": [100, 200], "seed": [0, 1]},
}
MODULAR = {
    "name": "modular",
    "data": {"name": "modular", "p": 7},
    "model": {"name": "mlp", "width": 8, "depth": 1},
    "train": {"batch_size": "full", "epochs": 10},
    "grid": {"model.width": [8, 16], "train.weight_decay": [0.0, 1.0], "seed": [0, 1]},
}
OMNIGROK = {
    "name": "omnigrok",
    "data": {"name": "digits", "n_train": 40},
    "model": {"name": "mlp", "width": 4},
    "train": {"batch_size": 20, "objective": "mse", "measures": "layer_norms"},
    "grid": {"model.init_scale": [0.5, 1.0, 4.0], "seed": [0, 1]},
}
MEASURED = {
    "name": "measured",
    "data": {"name": "digits", "n_train": 40},
    "model": {"name": "mlp", "width": 4},
    "train": {"batch_size": 20, "measures": "softmax_collapse, grad_weight_cosine"},
    "grid": {"train.orthogonal_grad": [False, True], "seed": [0, 1]},
}
