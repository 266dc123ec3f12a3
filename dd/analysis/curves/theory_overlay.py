"""The Belkin-Hsu-Xu risk drawn over model-wise and sample-wise squared-loss panels.

It applies when the sweep fits min-norm raw features on dd's isotropic Gaussian data
(``dd.analysis.theory``): the config declares this by ``data.name == "gaussian"`` with no slow
coordinates and ``model.name == "raw_features"``, drawn against p (``model.n_features``)
or n (``data.n_train``).
"""

from __future__ import annotations

import numpy as np

from dd.analysis.curves.base import CurveSet, SweepSpec
from dd.analysis.theory import gaussian_raw_features_risk

THEORY_AXES = ("model.n_features", "data.n_train")


def applies(spec: SweepSpec, x: str) -> bool:
    """Whether the closed-form risk is the theory of ``spec``'s curves along ``x``."""
    trial = spec.trials[0]
    return (
        trial.data.name == "gaussian"
        and trial.model.name == "raw_features"
        and trial.data.slow_dim == 0
        and x in THEORY_AXES
    )


def overlay(ax, curves: CurveSet, spec: SweepSpec) -> None:
    """The risk over p at each swept n (model-wise), or over n at each swept p (sample-wise),
    dashed crimson; nothing when the theory does not apply."""
    if not applies(spec, curves.x):
        return
    data = spec.trials[0].data
    if curves.x == "data.n_train":
        sizes = [t.data.n_train for t in spec.trials]
        n = np.arange(min(sizes), max(sizes) + 1)
        for p in sorted({t.model.n_features for t in spec.trials}):
            risk = gaussian_raw_features_risk(p, n, data.dim, data.beta_norm2, data.noise_var)
            ax.plot(
                n,
                np.where(np.isfinite(risk), risk, np.nan),
                color="crimson",
                lw=1,
                ls="--",
                zorder=5,
                label=f"theory (p={p})",
            )
        return
    for n in sorted({t.data.n_train for t in spec.trials}):
        p = np.arange(1, data.dim + 1)
        risk = gaussian_raw_features_risk(p, n, data.dim, data.beta_norm2, data.noise_var)
        risk = np.where(np.isfinite(risk), risk, np.nan)
        ax.plot(p, risk, color="crimson", lw=1, ls="--", zorder=5, label=f"theory (n={n})")
