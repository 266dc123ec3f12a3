"""Turn a stored sweep into curve tables (Parquet), landmark tables and figures on disk.

The aggregator loops over the registered curve kinds (``dd.analysis.curves.registry``): each that
applies to the spec computes its result from the spec's ok rows and gives its tables,
figures and lines; nothing here knows one kind from another.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute  # makes pa.compute available
from matplotlib.figure import Figure

from dd.analysis.curves.base import CurveSet
from dd.analysis.curves.registry import applicable, load as load_kinds
from dd.plan.refine import stored_additions, stored_seed_sites
from dd.plan.states import load_stored_spec, plan_of, running_notice, stored_rows
from dd.plan.sweep import Spec
from dd.spec.errors import StoreError
from dd.spec.expand import ids_of
from dd.store.paths import StorePath, atomic_write_bytes, write_parquet
from dd.store.schema import STATUS_OK
from dd.store.sweep import SweepStore


@dataclass(frozen=True)
class Aggregate:
    """What ``write_curves`` produced."""

    curves: list[CurveSet]
    left_out: int
    figures: list[StorePath]
    tables: list[StorePath]
    planned: int = 0  # the spec's trials
    missing: int = 0  # of them, those with no stored rows (not run, failed, quarantined)
    results: dict[str, Any] = field(default_factory=dict)  # each kind's result, by kind name
    running: str | None = None  # drawn while packs ran (``dd.plan.states.running_notice``)


def current_rows(table: pa.Table, trial_ids) -> tuple[pa.Table, int]:
    """The ok rows of the planned ``trial_ids``, and how many of them stored were left out."""
    planned = pa.array(sorted(trial_ids), pa.string())
    mine = table.filter(pa.compute.is_in(table["trial_id"], value_set=planned))
    ok = mine.filter(pa.compute.equal(mine["status"], STATUS_OK))
    left_out = len(set(mine["trial_id"].to_pylist()) - set(ok["trial_id"].to_pylist()))
    return ok, left_out


def compute_kinds(
    rows: pa.Table,
    spec: Spec,
    curve_sets_only: bool = False,
    added: Mapping[str, tuple[float, ...]] | None = None,
    seeded: Mapping[str, tuple[float, ...]] | None = None,
) -> dict[str, Any]:
    """{kind name: result} of every kind that applies (of those that draw curve sets, when
    ``curve_sets_only``) and finds something in ``rows``; a curve set along an axis that the
    spec's refinement extended carries the values it ``added`` and those where it ``seeded``
    (added seeds), of those it draws (``dd.plan.refine``)."""
    results: dict[str, Any] = {}
    for kind in applicable(spec):
        if curve_sets_only and not kind.curve_set:
            continue
        result = kind.compute(rows, spec, results)
        if isinstance(result, CurveSet) and spec.refine:
            drawn = set(result.points["x"].to_pylist()) if len(result.points) else set()
            marks = {
                name: tuple(sorted(v for v in set(by_axis[result.x]) if v in drawn))
                for name, by_axis in (("added", added), ("seeded", seeded))
                if by_axis and result.x in by_axis
            }
            result = dataclasses.replace(result, **marks)
        if result is not None:
            results[kind.name] = result
    return results


def curve_sets(results: dict[str, Any]) -> list[CurveSet]:
    """The results that are curve sets, in registry order."""
    return [results[k.name] for k in load_kinds() if k.curve_set and k.name in results]


def sweep_curves(
    table: pa.Table,
    spec: Spec,
    added: Mapping[str, tuple[float, ...]] | None = None,
    seeded: Mapping[str, tuple[float, ...]] | None = None,
) -> tuple[list[CurveSet], int]:
    """Every curve set the sweep supports, and the number of its trials left out (not ok);
    ``added``: the values its refinement added, by axis (``dd.plan.refine.stored_additions``),
    ``seeded``: those where it added seeds (``stored_seed_sites``)."""
    rows, left_out = current_rows(table, plan_of(spec).trial_ids)
    return curve_sets(compute_kinds(rows, spec, True, added, seeded)), left_out


def write_curves(
    store: SweepStore, spec: Spec | None = None, table: pa.Table | None = None
) -> Aggregate:
    """Aggregate the sweep's stored rows (``table``, if already read); write curves/,
    figures/ beside them."""
    spec = spec or load_stored_spec(store)
    table = table if table is not None else stored_rows(store, live=True)
    running = running_notice(store)
    planned = set(ids_of(spec.trials))
    missing = len(planned - set(table["trial_id"].unique().to_pylist()))
    rows, left_out = current_rows(table, plan_of(spec).trial_ids)
    results = compute_kinds(
        rows, spec, added=stored_additions(store), seeded=stored_seed_sites(store)
    )
    curves = curve_sets(results)
    if not any(len(c.points) for c in curves):
        if left_out:  # every stored trial diverged: a result, told by describe()
            return Aggregate(
                curves=[],
                left_out=left_out,
                figures=[],
                tables=[],
                planned=len(planned),
                missing=missing,
                running=running,
            )
        raise StoreError(
            f"{store.dir}: none of the stored rows belong to the current spec's "
            "trials; run 'dd sweep' with the spec"
        )
    figures, tables = [], []
    for kind in load_kinds():
        if kind.name not in results:
            continue
        for stem, data in kind.tables(results[kind.name]).items():
            path = store.curve_path(stem)
            write_parquet(path, data)
            tables.append(path)
        for name, fig in kind.figures(results[kind.name], spec).items():
            figures.append(save_png(fig, store, name))
    return Aggregate(
        curves=curves,
        left_out=left_out,
        figures=figures,
        tables=tables,
        planned=len(planned),
        missing=missing,
        results=results,
        running=running,
    )


def save_png(fig: Figure, store: SweepStore, name: str) -> StorePath:
    """Write ``fig`` as ``<sweep>/figures/<name>`` (local or remote, atomically)."""
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=120)
    path = store.figure_path(name)
    atomic_write_bytes(path, image.getvalue())
    return path


def verdicts(aggregate: Aggregate) -> list[str]:
    """Each kind's line of what the sweep found (``dd.analysis.curves.verdict``), in registry
    order."""
    return [
        line
        for kind in load_kinds()
        if kind.name in aggregate.results
        for line in kind.verdict(aggregate.results[kind.name])
    ]


def describe(aggregate: Aggregate) -> list[str]:
    """The kinds' lines (located thresholds, peaks, EMC, grokking times), what was left out,
    then the verdicts, for the terminal; a sweep still running says so first."""
    lines = [aggregate.running] if aggregate.running else []
    for kind in load_kinds():
        if kind.name in aggregate.results:
            lines += kind.summary(aggregate.results[kind.name])
    if not aggregate.curves:
        lines.append(
            f"no curve: all {aggregate.left_out} stored trials diverged "
            "('dd report' lists them with their configs)"
        )
    elif aggregate.left_out:
        lines.append(f"{aggregate.left_out} trials left out (diverged)")
    if aggregate.missing:
        lines.append(
            f"incomplete: {aggregate.missing} of {aggregate.planned} planned trials "
            "missing (not run, failed or unreadable; 'dd status' counts them); the "
            "curves are drawn without them"
        )
    return lines + verdicts(aggregate)
