"""Figures of curve sets: PNGs with a log-x capacity axis, the threshold and peak marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from dd.config import GaussianData, RawFeatures  # noqa: E402
from dd.curves import CurveSet  # noqa: E402
from dd.schema import column_name  # noqa: E402
from dd.spec import Spec  # noqa: E402
from dd.theory import gaussian_raw_features_risk  # noqa: E402

PANELS = (  # (title, [(metric, line style)], log y)
    ("zero-one error", [("test_error", "-"), ("train_error", ":")], False),
    ("squared loss", [("test_mse", "-"), ("train_mse", ":"), ("population_risk", "--")], True),
    ("coefficient l2 norm", [("coef_norm", "-")], True),
    ("effective parameters", [("p_eff_test", "-"), ("p_eff_train", ":")], True),
)


def _series_label(curves: CurveSet, key: tuple) -> str:
    return ", ".join(f"{s}={v}" for s, v in zip(curves.series, key))


def _rows(table: pa.Table, metric: str, series_cols: list[str], key: tuple) -> dict[str, np.ndarray]:
    keep = np.array([m == metric for m in table["metric"].to_pylist()])
    for col, value in zip(series_cols, key):
        keep &= np.array([v == value for v in table[col].to_pylist()])
    sub = table.filter(pa.array(keep))
    return {c: sub[c].to_numpy() for c in ("x", "mean", "ci_low", "ci_high")}


def plot_curves(curves: CurveSet, spec: Spec, out_dir: Path) -> Path:
    """Draw one curve set as a row of panels; returns the PNG path."""
    series_cols = [column_name(s) for s in curves.series]
    table = curves.points
    present = set(table["metric"].to_pylist()) if len(table) else set()
    panels = [p for p in PANELS if any(m in present for m, _ in p[1])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    keys = sorted({tuple(r[c] for c in series_cols) for r in table.to_pylist()},
                  key=lambda k: tuple(map(str, k)))
    colors = plt.cm.viridis(np.linspace(0, 0.85, max(len(keys), 1)))
    landmarks = curves.landmarks.to_pylist()
    for ax, (title, lines, log_y) in zip(axes[0], panels):
        lowest = np.inf  # of the panel's first (test-side) metric: train curves may reach 0
        for color, key in zip(colors, keys):
            label_key = _series_label(curves, key)
            for metric, style in lines:
                if metric not in present:
                    continue
                r = _rows(table, metric, series_cols, key)
                if len(r["x"]) == 0:
                    continue
                label = metric + (f" ({label_key})" if label_key else "")
                ax.plot(r["x"], r["mean"], style, color=color, label=label, marker=".", ms=3)
                if metric == lines[0][0]:
                    lowest = min(lowest, np.nanmin(r["mean"]))
                ax.fill_between(r["x"], r["ci_low"], r["ci_high"], color=color, alpha=0.2, lw=0)
            mark = next((lm for lm in landmarks
                         if tuple(lm.get(c) for c in series_cols) == key), None)
            if mark and mark["threshold_x"] is not None:
                ax.axvline(mark["threshold_x"], color=color, ls="--", lw=0.8, alpha=0.7)
        if title == "squared loss":
            _overlay_theory(ax, curves, spec)
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
            if np.isfinite(lowest) and lowest > 0:
                ax.set_ylim(bottom=lowest / 3)
        ax.set_xlabel(curves.x)
        ax.set_title(title)
        ax.legend(fontsize=6)
    fig.suptitle(f"{spec.name}: {curves.kind.replace('_', '-')} (dashed: interpolation threshold)",
                 fontsize=10)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{curves.kind}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _overlay_theory(ax, curves: CurveSet, spec: Spec) -> None:
    """The Belkin-Hsu-Xu risk, when the sweep is raw features on Gaussian data over p."""
    trial = spec.trials[0]
    if not (isinstance(trial.data, GaussianData) and isinstance(trial.model, RawFeatures)
            and curves.x == "model.n_features"):
        return
    data = trial.data
    ns = sorted({t.data.n_train for t in spec.trials})
    for n in ns:
        p = np.arange(1, data.dim + 1)
        risk = gaussian_raw_features_risk(p, n, data.dim, data.beta_norm2, data.noise_var)
        risk = np.where(np.isfinite(risk), risk, np.nan)
        ax.plot(p, risk, color="crimson", lw=1, ls="--", zorder=5, label=f"theory (n={n})")
