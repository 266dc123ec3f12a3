"""Figures of curve sets: a log-x capacity axis, the threshold and peak marked.

Each function returns a ``matplotlib.figure.Figure`` drawn without pyplot, so importing dd
leaves matplotlib's backend and pyplot's figure list alone (notebooks keep their inline
figures); the caller saves or shows it (``dd.aggregate`` writes PNGs).
"""

from __future__ import annotations

import matplotlib
import matplotlib.cm
import matplotlib.colors
import matplotlib.patches
import matplotlib.ticker
import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure

from dd.curves import EFFECTIVE_METRICS, CurveSet, EmcSet, final_emc, series_order
from dd.datasets.gaussian import GaussianData
from dd.models.raw import RawFeatures
from dd.schema import column_name
from dd.spec import Spec
from dd.theory import gaussian_raw_features_risk

PANELS = (  # (title, [(metric, line style)], log y); a panel shows if any metric is present
    ("accuracy", [("test_accuracy", "-"), ("train_accuracy", ":")], False),
    ("zero-one error", [("test_error", "-"), ("train_error", ":")], False),
    ("noised training labels", [("train_error_noisy", "-"), ("noisy_true_acc", ":")], False),
    ("squared loss", [("test_mse", "-"), ("train_mse", ":"), ("population_risk", "--")], True),
    ("loss", [("test_loss", "-"), ("train_loss", ":")], True),
    ("coefficient l2 norm", [("coef_norm", "-")], True),
    ("parameter l2 norm", [("param_norm", "-")], True),
    ("effective parameters", [("p_eff_test", "-"), ("p_eff_train", ":")], True),
    ("excluded / restricted loss", [("excluded_loss", "-"), ("restricted_loss", ":")], True),
    ("embedding Fourier Gini", [("fourier_gini", "-")], False),
    ("key frequencies", [("n_key_freqs", "-")], False),
    (
        "symmetricity / distance irrelevance",
        [("grad_symmetricity", "-"), ("distance_irrelevance", ":")],
        False,
    ),
)
MAX_LABELLED_SERIES = 8  # past this, lines are told apart by the colour bar, not the legend
MAX_PANELS_PER_ROW = 4
MAX_SEED_LINES = 10  # per-seed curves are drawn behind the mean up to this many seeds
VIRIDIS = matplotlib.colormaps["viridis"]


def _series_label(curves: CurveSet, key: tuple) -> str:
    return ", ".join(f"{s}={v}" for s, v in zip(curves.series, key, strict=True))


def _rows(
    table: pa.Table,
    metric: str,
    series_cols: list[str],
    key: tuple,
    columns: tuple[str, ...] = ("x", "mean", "ci_low", "ci_high"),
) -> dict[str, np.ndarray]:
    keep = np.array([m == metric for m in table["metric"].to_pylist()])
    for col, value in zip(series_cols, key, strict=True):
        keep &= np.array([v == value for v in table[col].to_pylist()])
    sub = table.filter(pa.array(keep))
    return {c: sub[c].to_numpy() for c in columns}


def _series_colours(keys: list[tuple]):
    """A colour per series and, for one numeric series axis, the norm of its colour bar
    (logarithmic when the values span a decade or more)."""
    numeric = keys and all(len(k) == 1 and isinstance(k[0], (int, float)) for k in keys)
    if not numeric:
        return list(VIRIDIS(np.linspace(0, 0.9, len(keys)))), None
    values = np.array([float(k[0]) for k in keys])
    log = values.min() > 0 and values.max() / values.min() >= 10
    norm = (matplotlib.colors.LogNorm if log else matplotlib.colors.Normalize)(
        values.min(), values.max()
    )
    return [VIRIDIS(0.9 * norm(v)) for v in values], norm


def plot_curves(curves: CurveSet, spec: Spec) -> Figure:
    """One curve set as rows of panels (four to a row).

    With more than ``MAX_LABELLED_SERIES`` series, only each panel's first (test-side) metric
    is drawn, and a colour bar replaces the legend.
    """
    series_cols = [column_name(s) for s in curves.series]
    table = curves.points
    present = set(table["metric"].to_pylist()) if len(table) else set()
    panels = [p for p in PANELS if any(m in present for m, _ in p[1])]
    n_cols = min(len(panels), MAX_PANELS_PER_ROW)
    n_rows = -(-len(panels) // n_cols)
    fig = Figure(figsize=(4.2 * n_cols, 3.6 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    axes = axes.reshape(1, -1)
    keys = sorted({tuple(r[c] for c in series_cols) for r in table.to_pylist()}, key=series_order)
    crowded = len(keys) > MAX_LABELLED_SERIES
    colours, norm = _series_colours(keys)
    landmarks = curves.landmarks.to_pylist()
    for ax, (title, lines, log_y) in zip(axes[0], panels, strict=False):  # spare axes hidden
        lowest = np.inf  # of the panel's first (test-side) metric: train curves may reach 0
        drawn: list[float] = []  # means and single seeds: the axis fits these, not the bands
        shown = [(m, style) for m, style in lines if m in present]
        for colour, key in zip(colours, keys, strict=True):
            label_key = "" if crowded else _series_label(curves, key)
            for metric, style in shown[:1] if crowded else shown:
                r = _rows(table, metric, series_cols, key)
                if len(r["x"]) == 0:
                    continue
                label = None if crowded else metric + (f" ({label_key})" if label_key else "")
                ax.plot(
                    r["x"],
                    r["mean"],
                    style,
                    color=colour,
                    label=label,
                    marker=".",
                    ms=3,
                    lw=1 if crowded else 1.5,
                )
                if metric == lines[0][0]:
                    lowest = min(lowest, np.nanmin(r["mean"]))
                drawn += list(r["mean"])
                if len(curves.per_seed):
                    drawn += list(
                        _rows(curves.per_seed, metric, series_cols, key, ("value",))["value"]
                    )
                ax.fill_between(
                    r["x"],
                    r["ci_low"],
                    r["ci_high"],
                    color=colour,
                    alpha=0.08 if crowded else 0.2,
                    lw=0,
                )
                if not crowded and metric == shown[0][0]:
                    _plot_seeds(ax, curves, metric, series_cols, key, colour)
            mark = next(
                (lm for lm in landmarks if tuple(lm.get(c) for c in series_cols) == key), None
            )
            if mark and mark["threshold_x"] is not None:
                ax.axvline(mark["threshold_x"], color=colour, ls="--", lw=0.8, alpha=0.7)
        if title == "squared loss":
            _overlay_theory(ax, curves, spec)
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        _fit_y(ax, np.asarray(drawn, float), lowest, log_y)
        ax.set_xlabel(curves.x)
        ax.set_title(title + (f" ({shown[0][0]})" if crowded else ""))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    if crowded and norm is not None:
        mappable = matplotlib.cm.ScalarMappable(cmap=_truncated_viridis(), norm=norm)
        fig.colorbar(mappable, ax=axes[0].tolist(), label=curves.series[0], pad=0.01)
    marked = {"grokking": "memorisation", "sample_wise": "EMC, the largest n_train fit"}.get(
        curves.kind, "interpolation threshold"
    )
    fig.suptitle(f"{spec.name}: {curves.kind.replace('_', '-')} (dashed: {marked})", fontsize=10)
    return fig


def plot_effective(table: pa.Table, curves: CurveSet, spec: Spec) -> Figure:
    """Each test loss against the raw feature count (left) and against the effective
    parameters on test inputs (right, Curth et al. 2023): points coloured by the raw count
    and joined in its order, so a double descent that folds back into a U shows as a path
    that runs out to the threshold's p_eff and returns. The threshold point is ringed."""
    series_cols = [column_name(s) for s in curves.series]
    metrics = [m for m in EFFECTIVE_METRICS if table[m].null_count < len(table)]
    fig = Figure(figsize=(9.5, 3.6 * len(metrics)), layout="constrained")
    axes = fig.subplots(len(metrics), 2, squeeze=False)
    rows = table.to_pylist()
    keys = sorted({tuple(r[c] for c in series_cols) for r in rows}, key=series_order)
    xs = np.array([r["x"] for r in rows], float)
    norm = matplotlib.colors.LogNorm(xs.min(), xs.max()) if xs.min() > 0 else None
    thresholds = {
        tuple(lm.get(c) for c in series_cols): lm["threshold_x"]
        for lm in curves.landmarks.to_pylist()
    }
    for (ax_raw, ax_eff), metric in zip(axes, metrics, strict=True):
        for key in keys:
            mine = [
                r
                for r in rows
                if tuple(r[c] for c in series_cols) == key
                and r[metric] is not None
                and r["p_eff_test"] is not None
            ]
            x = np.array([r["x"] for r in mine])
            y = np.array([r[metric] for r in mine])
            p_eff = np.array([r["p_eff_test"] for r in mine])
            label = _series_label(curves, key) or None
            for ax, horizontal in ((ax_raw, x), (ax_eff, p_eff)):
                ax.plot(horizontal, y, "-", color="0.6", lw=1, zorder=1, label=label)
                dots = ax.scatter(horizontal, y, c=x, cmap="viridis", norm=norm, s=16, zorder=2)
                at = np.flatnonzero(x == thresholds.get(key))
                ax.scatter(
                    horizontal[at], y[at], s=90, facecolors="none", edgecolors="crimson", zorder=3
                )
        for ax, xlabel in ((ax_raw, curves.x), (ax_eff, "effective parameters (p_eff_test)")):
            ax.set_xscale("log")
            _plain_log_ticks(ax.xaxis)
            if metric == "test_mse":
                ax.set_yscale("log")
                _plain_log_ticks(ax.yaxis)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(metric)
        ax_raw.set_title(f"{metric} against {curves.x}")
        ax_eff.set_title(f"{metric} against effective parameters")
        _plain_log_ticks(fig.colorbar(dots, ax=ax_eff, label=curves.x).ax.yaxis)
    fig.suptitle(
        f"{spec.name}: effective parameters (ringed: interpolation threshold)", fontsize=10
    )
    return fig


def _plain_log_ticks(axis) -> None:
    """Ticks at 1, 2, 5 x 10^k labelled as plain numbers (2, 5, 10, 20, ...); over more than
    three decades only the powers of ten are labelled, so labels do not run together."""

    def label(value: float, _) -> str:
        low, high = sorted(axis.get_view_interval())
        wide = low > 0 and high / low > 1e3
        mantissa = value / 10 ** np.floor(np.log10(value)) if value > 0 else 1.0
        return "" if wide and not np.isclose(mantissa, 1.0) else f"{value:g}"

    axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(label))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _fit_y(ax, drawn: np.ndarray, lowest: float, log_y: bool) -> None:
    """Fit the y axis to the drawn means and seeds, so that the 95% band of two or three
    seeds (a Student t with 1-2 degrees of freedom is wide) cannot squash the curves."""
    drawn = drawn[np.isfinite(drawn)]
    if len(drawn) == 0:
        return
    if log_y:
        ax.set_yscale("log")
        positive = drawn[drawn > 0]
        if np.isfinite(lowest) and lowest > 0 and len(positive):
            ax.set_ylim(lowest / 3, positive.max() * 3)
        return
    lo, hi = drawn.min(), drawn.max()
    pad = 0.08 * (hi - lo) or 0.05 * max(abs(hi), 1.0)
    ax.set_ylim(lo - pad, hi + pad)


def _plot_seeds(
    ax, curves: CurveSet, metric: str, series_cols: list[str], key: tuple, colour
) -> None:
    """Each seed's own curve, thin and faint behind the mean (up to MAX_SEED_LINES seeds)."""
    if len(curves.per_seed) == 0:
        return
    r = _rows(curves.per_seed, metric, series_cols, key, ("x", "seed", "value"))
    seeds = np.unique(r["seed"])
    if len(seeds) > MAX_SEED_LINES:
        return
    for seed in seeds:
        mine = r["seed"] == seed
        ax.plot(r["x"][mine], r["value"][mine], "-", color=colour, lw=0.5, alpha=0.35)


def _truncated_viridis():
    """The part of viridis the series colours use (0 to 0.9)."""
    return matplotlib.colors.ListedColormap(VIRIDIS(np.linspace(0, 0.9, 256)))


def _overlay_theory(ax, curves: CurveSet, spec: Spec) -> None:
    """The Belkin-Hsu-Xu risk, when the sweep is raw features on Gaussian data over p (or,
    sample-wise, over n at each p)."""
    trial = spec.trials[0]
    if not (
        isinstance(trial.data, GaussianData)
        and isinstance(trial.model, RawFeatures)
        and trial.data.slow_dim == 0
        and curves.x in ("model.n_features", "data.n_train")
    ):
        return
    data = trial.data
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
    ns = sorted({t.data.n_train for t in spec.trials})
    for n in ns:
        p = np.arange(1, data.dim + 1)
        risk = gaussian_raw_features_risk(p, n, data.dim, data.beta_norm2, data.noise_var)
        risk = np.where(np.isfinite(risk), risk, np.nan)
        ax.plot(p, risk, color="crimson", lw=1, ls="--", zorder=5, label=f"theory (n={n})")


def plot_heatmap(curves: CurveSet, spec: Spec, metric: str = "test_error") -> Figure | None:
    """Mean ``metric`` over (model axis, epoch), as in Nakkiran et al.'s Fig. 2."""
    if curves.kind != "epoch_wise" or len(curves.series) != 1 or len(curves.points) == 0:
        return None
    col = column_name(curves.series[0])
    rows = [r for r in curves.points.to_pylist() if r["metric"] == metric]
    if not rows:
        return None
    ys = sorted({float(r[col]) for r in rows})
    xs = sorted({r["x"] for r in rows})
    grid = np.full((len(ys), len(xs)), np.nan)
    for r in rows:
        grid[ys.index(float(r[col])), xs.index(r["x"])] = r["mean"]
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    (y_edges, y_scale) = _cell_edges(ys)  # a swept weight decay may include 0: linear
    mesh = ax.pcolormesh(_edges(xs), y_edges, grid, cmap="magma", shading="flat")
    ax.set_xscale("log")
    ax.set_yscale(y_scale)
    ax.set_xlabel("epoch")
    ax.set_ylabel(curves.series[0])
    fig.colorbar(mesh, ax=ax, label=f"mean {metric}")
    ax.set_title(f"{spec.name}: {metric} over {curves.series[0]} and epochs", fontsize=9)
    fig.tight_layout()
    return fig


def _edges(centres: list[float]) -> np.ndarray:
    """Cell edges between log-spaced centres (geometric midpoints)."""
    c = np.asarray(centres, dtype=float)
    if len(c) == 1:
        return np.array([c[0] / 1.5, c[0] * 1.5])
    mids = np.sqrt(c[:-1] * c[1:])
    return np.concatenate([[c[0] ** 2 / mids[0]], mids, [c[-1] ** 2 / mids[-1]]])


PHASE_COLOURS = {
    "comprehension": "#1b9e77",
    "grokking": "#7570b3",
    "memorisation": "#d95f02",
    "confusion": "#999999",
    "inversion": "#1b9e77",
    "coexistence": "#66a61e",
    "forgetting": "#e7298a",
}


def plot_grok_times(table: pa.Table, spec: Spec, axis: str) -> Figure:
    """Time to memorise and to generalise per trial against ``axis``, medians joined; trials
    that never generalise are drawn at the top edge as open markers."""
    col = column_name(axis)
    xs, mem, gen = (
        np.asarray(table[c].to_pylist(), float) for c in (col, "t_memorise", "t_generalise")
    )
    budget = float(np.nanmax(table["budget"].to_numpy()))
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    for values, colour, label in (
        (mem, "tab:orange", "memorise (train)"),
        (gen, "tab:blue", "generalise (test)"),
    ):
        reached = ~np.isnan(values)
        ax.scatter(xs[reached], values[reached], color=colour, s=14, alpha=0.6)
        ax.scatter(
            xs[~reached],
            np.full((~reached).sum(), budget),
            facecolors="none",
            edgecolors=colour,
            s=24,
        )
        grid = np.unique(xs)
        medians = [
            np.median(np.where(np.isnan(values[xs == g]), np.inf, values[xs == g])) for g in grid
        ]
        finite = np.isfinite(medians)
        ax.plot(grid[finite], np.asarray(medians)[finite], "-", color=colour, label=label)
    ax.axhline(budget, color="grey", lw=0.6, ls=":")
    ax.set_yscale("log")
    if np.all(xs > 0) and xs.max() / xs.min() >= 10:
        ax.set_xscale("log")
    ax.set_xlabel(axis)
    ax.set_ylabel(f"first step with accuracy >= {spec.curves.grok_accuracy:g}")
    ax.set_title(
        f"{spec.name}: time to memorise and to generalise\n(median line; open "
        "markers: not within the budget)",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _tick_label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plot_phases(table: pa.Table, spec: Spec, axes: tuple[str, str]) -> Figure:
    """The phase of each cell of ``axes`` (the most common over its seeds) as a coloured grid."""
    cx, cy = (column_name(a) for a in axes)
    xs, ys = (sorted(set(table[c].to_pylist()), key=lambda v: series_order((v,))) for c in (cx, cy))
    phases = sorted(set(table["phase"].to_pylist()), key=list(PHASE_COLOURS).index)
    grid = np.full((len(ys), len(xs)), -1)
    counts = {}
    for r in table.to_pylist():
        counts.setdefault((r[cx], r[cy]), []).append(r["phase"])
    for (x, y), found in counts.items():
        common = max(phases, key=found.count)
        grid[ys.index(y), xs.index(x)] = phases.index(common)
    cmap = matplotlib.colors.ListedColormap([PHASE_COLOURS[p] for p in phases])
    fig = Figure(figsize=(1.2 + 0.7 * len(xs), 1.4 + 0.5 * len(ys)))
    ax = fig.subplots()
    ax.imshow(
        np.ma.masked_less(grid, 0),
        cmap=cmap,
        vmin=-0.5,
        vmax=len(phases) - 0.5,
        origin="lower",
        aspect="auto",
    )
    ax.set_xticks(range(len(xs)), [_tick_label(v) for v in xs], rotation=45, fontsize=7)
    ax.set_yticks(range(len(ys)), [_tick_label(v) for v in ys], fontsize=7)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    handles = [matplotlib.patches.Patch(color=PHASE_COLOURS[p], label=p) for p in phases]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(f"{spec.name}: phases (accuracy {spec.curves.phase_accuracy:g})", fontsize=9)
    fig.tight_layout()
    return fig


def plot_emc(emc: EmcSet, spec: Spec) -> Figure:
    """The effective model complexity, drawn without pyplot (the caller saves it). Left, the
    final mean train metric over capacity x n_train with the EMC drawn through it (one model:
    the metric against n_train, the EMC dashed); right, for trained models, the EMC of each
    model over epochs. Bars span the seeds' EMCs; open markers are censored (every swept
    n_train is fit)."""
    series_cols = [column_name(a) for a in emc.series]
    final = final_emc(emc).to_pylist()
    last = {tuple(r[c] for c in series_cols): r.get("epoch") for r in final}
    grid = [
        g
        for g in emc.grid.to_pylist()
        if g.get("epoch") == last.get(tuple(g[c] for c in series_cols))
    ]
    over_epochs = "epoch" in emc.table.column_names
    fig = Figure(figsize=(5.6 * (1 + over_epochs), 4.4), layout="constrained")
    axes = fig.subplots(1, 1 + over_epochs, squeeze=False)
    ax = axes[0][0]
    if len(series_cols) == 1 and all(isinstance(r[series_cols[0]], (int, float)) for r in final):
        _emc_plane(ax, fig, emc, final, grid, series_cols[0])
    else:
        _emc_lines(ax, emc, final, grid, series_cols)
    if over_epochs:
        _emc_over_epochs(axes[0][1], fig, emc, series_cols)
    fig.suptitle(
        f"{spec.name}: effective model complexity (largest n_train with mean "
        f"{emc.metric} < {emc.tol:g})",
        fontsize=10,
    )
    return fig


def _emc_plane(ax, fig, emc: EmcSet, final: list[dict], grid: list[dict], col: str) -> None:
    xs = sorted({float(g[col]) for g in grid})
    ns = sorted({float(g["n_train"]) for g in grid})
    values = np.full((len(ns), len(xs)), np.nan)
    for g in grid:
        values[ns.index(float(g["n_train"])), xs.index(float(g[col]))] = g["mean"]
    (x_edges, x_scale), (n_edges, n_scale) = _cell_edges(xs), _cell_edges(ns)
    mesh = ax.pcolormesh(x_edges, n_edges, values, cmap="viridis", shading="flat")
    fig.colorbar(mesh, ax=ax, label=f"final mean {emc.metric}")
    _draw_emc(ax, [float(r[col]) for r in final], final, "crimson", "EMC")
    ax.set_xscale(x_scale)
    ax.set_yscale(n_scale)
    for axis, scale in ((ax.xaxis, x_scale), (ax.yaxis, n_scale)):
        if scale == "log":
            _plain_log_ticks(axis)
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(n_edges[0], n_edges[-1])
    ax.set_xlabel(emc.series[0])
    ax.set_ylabel("n_train")
    ax.set_title("final epoch", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")


def _emc_lines(
    ax, emc: EmcSet, final: list[dict], grid: list[dict], series_cols: list[str]
) -> None:
    """One model: its train metric against n_train, the EMC dashed. Several series axes: the
    EMC against the first, one line per value of the others."""
    if not series_cols:
        ns, means = np.array(sorted((g["n_train"], g["mean"]) for g in grid)).T
        ax.plot(ns, means, "o-", ms=3, color="tab:blue", label=f"mean {emc.metric}")
        ax.axhline(emc.tol, color="grey", lw=0.6, ls=":", label="tolerance")
        if final[0]["emc"] is not None:
            ax.axvline(
                final[0]["emc"], color="crimson", ls="--", lw=1, label=f"EMC = {final[0]['emc']:g}"
            )
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel("n_train")
        ax.set_ylabel(emc.metric)
    else:
        first, rest = series_cols[0], series_cols[1:]
        keys = sorted({tuple(r[c] for c in rest) for r in final}, key=series_order)
        colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, max(len(keys), 1)))
        for colour, key in zip(colours, keys, strict=False):
            mine = [r for r in final if tuple(r[c] for c in rest) == key]
            mine.sort(key=lambda r: series_order((r[first],)))
            label = ", ".join(f"{c}={v}" for c, v in zip(rest, key, strict=True)) or "EMC"
            _draw_emc(ax, [r[first] for r in mine], mine, colour, label)
        ax.set_xlabel(emc.series[0])
        ax.set_ylabel("EMC (n_train)")
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
    ax.set_title("final epoch", fontsize=9)
    ax.legend(fontsize=7)


def _draw_emc(ax, xs: list, rows: list[dict], colour, label: str) -> None:
    """EMC points joined, bars over the seeds' range, censored points open."""
    xs = np.asarray(xs, dtype=object)
    emc = np.array([np.nan if r["emc"] is None else r["emc"] for r in rows], float)
    low = np.array([np.nan if r["emc_low"] is None else r["emc_low"] for r in rows], float)
    high = np.array([np.nan if r["emc_high"] is None else r["emc_high"] for r in rows], float)
    censored = np.array([bool(r["censored"]) for r in rows])
    ax.plot(xs, emc, "-", color=colour, lw=1.5, label=label)
    bars = ~np.isnan(emc)
    ax.errorbar(
        xs[bars],
        emc[bars],
        yerr=[np.nan_to_num(emc - low)[bars], np.nan_to_num(high - emc)[bars]],
        fmt="none",
        ecolor=colour,
        lw=0.8,
        capsize=2,
    )
    ax.scatter(xs[bars & ~censored], emc[bars & ~censored], color=colour, s=18, zorder=3)
    ax.scatter(
        xs[bars & censored],
        emc[bars & censored],
        facecolors="white",
        edgecolors=colour,
        s=22,
        zorder=3,
    )


def _emc_over_epochs(ax, fig, emc: EmcSet, series_cols: list[str]) -> None:
    rows = emc.table.to_pylist()
    keys = sorted({tuple(r[c] for c in series_cols) for r in rows}, key=series_order)
    colours, norm = _series_colours(keys)
    for colour, key in zip(colours, keys, strict=True):
        mine = sorted(
            (r for r in rows if tuple(r[c] for c in series_cols) == key), key=lambda r: r["epoch"]
        )
        label = (
            None
            if norm is not None
            else (", ".join(f"{c}={v}" for c, v in zip(emc.series, key, strict=True)) or "EMC")
        )
        _draw_emc(ax, [r["epoch"] for r in mine], mine, colour, label)
    if norm is not None:
        mappable = matplotlib.cm.ScalarMappable(cmap=_truncated_viridis(), norm=norm)
        fig.colorbar(mappable, ax=ax, label=emc.series[0])
    elif ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel("epoch")
    ax.set_ylabel("EMC (n_train)")
    ax.set_title("over epochs (a gap: no n_train fit yet)", fontsize=9)


def _cell_edges(centres: list[float]) -> tuple[np.ndarray, str]:
    """Cell edges around sorted centres and the axis scale: geometric midpoints on a log
    axis when every centre is positive, else arithmetic ones on a linear axis."""
    c = np.asarray(centres, dtype=float)
    if np.all(c > 0):
        return _edges(centres), "log"
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5]), "linear"
    mids = (c[:-1] + c[1:]) / 2
    return np.concatenate([[2 * c[0] - mids[0]], mids, [2 * c[-1] - mids[-1]]]), "linear"
