"""The report's interactive curves: Plotly figures whose plotly.js is inlined once per page
(no network). Hover shows a point's mean, interval and every seed's value behind it; a
legend click hides a series (its band with it); the axes zoom. Bands are the curves'
``ci_low`` / ``ci_high``, already clipped to the metric's range (``metric_range``)."""

from __future__ import annotations

import html

from dd.analysis.curves.base import CurveSet, series_order
from dd.analysis.curves.ranges import metric_range
from dd.store.schema import column_name

SHOWN = {  # the metrics drawn per curve kind: the fit and the test
    "grokking": ("train_accuracy", "test_accuracy"),
}
DEFAULT = ("train_error", "test_error", "train_mse", "test_mse")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def plotly_script() -> str:
    """plotly.js, inline (a few MB, once per page)."""
    from plotly.offline import get_plotlyjs

    return f'<script type="text/javascript">{get_plotlyjs()}</script>'


def curve_figure(curves: CurveSet, div_id: str) -> str:
    """A curve set's interactive figure (a div and the script that draws it)."""
    import plotly.graph_objects as go
    import plotly.io as pio

    points = curves.points.to_pylist()
    metrics = [m for m in SHOWN.get(curves.kind, DEFAULT) if any(p["metric"] == m for p in points)]
    cols = [column_name(s) for s in curves.series]
    seeds: dict[tuple, list[str]] = {}
    for r in curves.per_seed.to_pylist():
        key = (tuple(r[c] for c in cols), r["x"], r["metric"])
        seeds.setdefault(key, []).append(f"seed {r['seed']}: {r['value']:.4g}")
    fig = go.Figure()
    keys = sorted({tuple(p[c] for c in cols) for p in points}, key=series_order)
    for i, key in enumerate(keys):
        where = ", ".join(f"{c}={v}" for c, v in zip(cols, key, strict=True)) or "all"
        for j, metric in enumerate(metrics):
            mine = sorted(
                (p for p in points if p["metric"] == metric and tuple(p[c] for c in cols) == key),
                key=lambda p: p["x"],
            )
            if not mine:
                continue
            name, group = f"{where}: {metric}", f"{where}: {metric}"
            colour = COLOURS[(i * len(metrics) + j) % len(COLOURS)]
            xs = [p["x"] for p in mine]
            lo, hi = metric_range(metric)
            fig.add_trace(
                go.Scatter(
                    x=xs + xs[::-1],
                    y=[min(p["ci_high"], hi) for p in mine]
                    + [max(p["ci_low"], lo) for p in mine][::-1],
                    fill="toself",
                    mode="lines",
                    fillcolor=colour,
                    opacity=0.15,
                    line={"width": 0},
                    hoverinfo="skip",
                    legendgroup=group,
                    showlegend=False,
                    name=f"{name} 95% band",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=[p["mean"] for p in mine],
                    mode="lines+markers",
                    name=name,
                    legendgroup=group,
                    line={"color": colour},
                    customdata=[
                        [
                            f"{p['ci_low']:.4g} to {p['ci_high']:.4g}",
                            p["n_seeds"],
                            "<br>".join(seeds.get((key, p["x"], metric), [])),
                        ]
                        for p in mine
                    ],
                    hovertemplate=(
                        f"{html.escape(where)}<br>{curves.x}=%{{x:.4g}}<br>{metric} mean "
                        "%{y:.4g}, 95% %{customdata[0]} over %{customdata[1]} seeds<br>"
                        "%{customdata[2]}<extra></extra>"
                    ),
                )
            )
    xs = [p["x"] for p in points]
    log_x = bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= 100
    fig.update_layout(
        title=f"{curves.kind} (x = {curves.x})",
        xaxis={"title": curves.x, "type": "log" if log_x else "linear"},
        yaxis={"title": " / ".join(metrics)},
        hovermode="closest",
        height=480,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"font": {"size": 10}},
    )
    return pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )
