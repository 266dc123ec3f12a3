"""The EMC curve kind: sweeps over the training-set size get each model's effective model
complexity per epoch (``emc``, ``emc_grid``), its figure, and where it reaches each n_train
of the model-wise curves, beside their threshold and peaks (Nakkiran et al.'s hypothesis:
the test peak sits there)."""

from __future__ import annotations

from dataclasses import dataclass

from dd.analysis.curves import model_wise, tiny
from dd.analysis.curves.base import PEAK_METRICS, CurveKind, no_check, told_nowhere
from dd.analysis.curves.emc_values import (
    EmcSet,
    emc_crossings,
    emc_curves,
    final_emc,
    sample_axis,
    train_sizes,
)
from dd.analysis.curves.intervals import peak_note, spread
from dd.analysis.curves.lead import Lead
from dd.store.schema import column_name

NAME = "emc"


@dataclass(frozen=True)
class Emc:
    """The EMC of a sweep and where it reaches each model-wise curve's n_train."""

    emc: EmcSet
    crossings: tuple[dict, ...]


def compute(rows, spec, earlier) -> Emc | None:
    emc = emc_curves(rows, spec)
    if emc is None:
        return None
    curves = earlier.get(model_wise.NAME)
    sizes = train_sizes(rows, emc.axis)
    return Emc(emc, tuple(emc_crossings(emc, curves, sizes)) if curves is not None else ())


def figures(result: Emc, spec) -> dict:
    from dd.analysis.curves.emc_figure import plot_emc  # matplotlib loads for figures only

    return {f"{NAME}.png": plot_emc(result.emc, spec)}


def summary(result: Emc) -> list[str]:
    """The final EMC of each model (few) with the seeds' range, and where it reaches each
    model-wise n_train, beside the threshold (the seeds' range) and peaks (95% interval and
    significance) of that curve."""
    emc = result.emc
    series_cols = [column_name(a) for a in emc.series]
    final = final_emc(emc).to_pylist()
    lines = [f"EMC (largest n_train with mean {emc.metric} < {emc.tol:g}; seeds' range):"]
    shown = final if len(final) <= 12 else []
    for r in shown:
        where = " ".join(f"{c}={r[c]}" for c in series_cols)
        value = (
            "below the smallest n_train"
            if r["emc"] is None
            else (
                f"{'>= ' if r['censored'] else ''}{r['emc']:g} [{_g(r['emc_low'])}, "
                f"{_g(r['emc_high'])}]"
            )
        )
        lines.append(
            f"  {where or 'the model'}".rstrip()
            + ("" if "epoch" not in r else f" at epoch {r['epoch']}")
            + f": {value}"
        )
    if not shown:
        lines.append(f"  {len(final)} models: see curves/emc.parquet")
    for c in result.crossings:
        peaks = ", ".join(
            f"{m} peak at {c[f'{m}_peak_x']:g}"
            + (f" ({note[2:]})" if (note := peak_note(c, m)) else "")
            for m in PEAK_METRICS
            if c.get(f"{m}_peak_x") is not None
        )
        cross = "never" if c["emc_cross_x"] is None else f"at {c['x']}={c['emc_cross_x']:g}"
        threshold = "none" if c["threshold_x"] is None else f"{c['threshold_x']:g}"
        lines.append(
            f"  EMC reaches n_train={c['n_train']} {cross}; model-wise threshold "
            f"{threshold}{spread(c, c['x'])}" + (f"; {peaks}" if peaks else "")
        )
    return lines


def _g(value) -> str:
    return "below" if value is None else f"{value:g}"


KIND = CurveKind(
    name=NAME,
    tiny=tiny.TRAINED,
    needs="a swept training-set size (data.n_train, or data.train_fraction on modular data)",
    axis=sample_axis,
    compute=compute,
    tables=lambda result: {NAME: result.emc.table, "emc_grid": result.emc.grid},
    figures=figures,
    summary=summary,
    sections=told_nowhere,
    check=no_check,
    curve_set=False,
    lead=Lead(rank=2, title="effective model complexity", lines=summary, figures=("emc.png",)),
)
