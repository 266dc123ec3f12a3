"""Refinement rounds: run the grid, locate each ``refine:`` target in the stored rows, add the
values that bisect its bracket as new grid values (every seed and series of the spec), run
them as new packs through the same driver, and repeat until each bracket is within its
resolution or its ``max_trials`` are spent.

Nothing is held in the driver's memory between rounds: each round reads the stored rows. The
values a round adds are stored (``dd.plan.refine``, ``refine.json``) before its packs run, so an
interrupted round resumes as any sweep does, and the same command run again extends the grid
with them, trains nothing and locates the same bracket. ``curves/refine.parquet`` holds each
round's bracket.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pyarrow as pa

from dd.analysis.aggregate import current_rows
from dd.analysis.refine import Located, locate
from dd.plan.refine import Refine, extended, read_state, write_state
from dd.plan.states import plan_of, stored_rows
from dd.plan.sweep import Spec
from dd.run.schedule import SweepReport
from dd.store.paths import write_parquet
from dd.store.sweep import SweepStore


def refine_sweep(
    given: Spec,
    store: SweepStore,
    prepare: Callable[[dict], Spec],
    run: Callable[[Spec], SweepReport],
    say: Callable[[str], None],
) -> tuple[Spec, SweepReport, list[str]]:
    """Run ``given`` (a spec with ``refine:`` targets) and its refinement rounds.

    ``prepare`` turns a spec mapping into a loaded, resolved spec; ``run`` runs a spec's
    missing trials (``dd.run.execute.run_sweep``). Returns the last spec run (the grid with
    every value added), the runs' report summed, and the closing lines."""
    state = read_state(store, given.mapping)
    spec = prepare(extended(given.mapping, state["added"]))
    total = run(spec)
    for entry in state["rounds"]:
        entry["finished"] = True  # its packs ran in the run above
    while not total.failed_packs:
        found = {t: locate(_rows(store, spec), spec, t) for t in spec.refine}
        number = len(state["rounds"]) + 1
        adds = _choose(spec, state, found)
        if not any(adds.values()):
            break
        for target, values in adds.items():
            state["added"].setdefault(target.axis, []).extend(values)
            used = state.setdefault("used", {})
            used[_key(target)] = used.get(_key(target), 0) + len(values) * _per_value(spec, target)
            state["rounds"].append(_record(number, target, found[target], values, spec))
            say(_round_line(number, target, found[target], values))
        write_state(store, state)  # before the packs run: an interrupt resumes this round
        spec = prepare(extended(given.mapping, state["added"]))
        total = _sum(total, run(spec))
        for entry in state["rounds"]:
            entry["finished"] = True
        write_state(store, state)
        _write_table(store, state["rounds"], {})
    if total.failed_packs:
        return spec, total, ["refinement waits: packs failed; run the same command again"]
    found = {t: locate(_rows(store, spec), spec, t) for t in spec.refine}
    _write_table(store, state["rounds"], found)
    write_state(store, state)
    return spec, total, [_closing(t, found[t], state, spec, given) for t in spec.refine]


def _rows(store: SweepStore, spec: Spec) -> pa.Table:
    return current_rows(stored_rows(store), plan_of(spec).trial_ids)[0]


def _key(target: Refine) -> str:
    return f"{target.find}:{target.axis}"


def _axis_values(spec: Spec, axis: str) -> set:
    section, *path = axis.split(".")
    values = set()
    for trial in spec.trials:
        node = getattr(trial, section)
        for part in path:
            node = getattr(node, part)
        values.add(node)
    return values


def _per_value(spec: Spec, target: Refine) -> int:
    """Trials one value of the axis adds: every seed and series of the grid."""
    return max(1, len(spec.trials) // max(1, len(_axis_values(spec, target.axis))))


def _choose(spec: Spec, state: dict, found: dict[Refine, list[Located]]) -> dict[Refine, list]:
    """Each target's new values: its series' bisecting values not yet in the grid, as many as
    its remaining ``max_trials`` pay for."""
    adds: dict[Refine, list] = {}
    taken: dict[str, set] = {}
    for target, located in found.items():
        present = taken.setdefault(target.axis, set(_axis_values(spec, target.axis)))
        values = sorted({v for loc in located for v in loc.new} - present)
        cost = _per_value(spec, target)
        left = target.max_trials - state.get("used", {}).get(_key(target), 0)
        values = values[: max(0, left // cost)]
        present.update(values)
        adds[target] = values
    return adds


def _widest(located: list[Located]) -> Located | None:
    open_ = [loc for loc in located if loc.lo is not None]
    return max(open_, key=lambda loc: loc.width) if open_ else None


def _short(axis: str) -> str:
    return axis.split(".")[-1]


def _round_line(number: int, target: Refine, located: list[Located], values: list) -> str:
    loc = _widest(located)
    where = (
        f"between {_short(target.axis)} {loc.lo:g} and {loc.hi:g} ({loc.seeds} seeds)"
        if loc is not None
        else "not bracketed"
    )
    many = f" (widest of {len(located)} series)" if len(located) > 1 else ""
    plural = "s" if len(values) != 1 else ""
    return (
        f"round {number}: {target.find} {where}{many}; +{len(values)} {_short(target.axis)}{plural}"
    )


def _record(number: int, target: Refine, located: list[Located], values: list, spec) -> dict:
    loc = _widest(located)
    return {
        "round": number,
        "find": target.find,
        "axis": target.axis,
        "lo": None if loc is None else loc.lo,
        "hi": None if loc is None else loc.hi,
        "at": None if loc is None else loc.at,
        "seeds": 0 if loc is None else loc.seeds,
        "added": [float(v) for v in values],
        "trials_added": len(values) * _per_value(spec, target),
        "finished": False,
    }


def _write_table(store: SweepStore, rounds: list[dict], found: dict) -> None:
    """``curves/refine.parquet``: each round's bracket and values, then (``found``) where
    each target lies now."""
    records = [dict(r) for r in rounds]
    for target, located in found.items():
        loc = _widest(located) or (located[0] if located else None)
        records.append(
            {
                "round": len(rounds) + 1,
                "find": target.find,
                "axis": target.axis,
                "lo": None if loc is None else loc.lo,
                "hi": None if loc is None else loc.hi,
                "at": None if loc is None else loc.at,
                "seeds": 0 if loc is None else loc.seeds,
                "added": [],
                "trials_added": 0,
                "finished": True,
            }
        )
    if records:
        schema = pa.schema(
            [
                ("round", pa.int64()),
                ("find", pa.string()),
                ("axis", pa.string()),
                ("lo", pa.float64()),
                ("hi", pa.float64()),
                ("at", pa.float64()),
                ("seeds", pa.int64()),
                ("added", pa.list_(pa.float64())),
                ("trials_added", pa.int64()),
                ("finished", pa.bool_()),
            ]
        )
        write_parquet(store.curve_path("refine"), pa.Table.from_pylist(records, schema=schema))


def _closing(target: Refine, located: list[Located], state: dict, spec: Spec, given: Spec) -> str:
    """Where the target lies, why refinement stopped, the trials it used and what a dense
    grid at the resolution over the same range would have needed."""
    loc = _widest(located)
    used = state.get("used", {}).get(_key(target), 0)
    if loc is None:
        why = located[0].why if located else "no rows"
        where = f"{target.find} of {target.axis}: {why}"
    else:
        whys = {x.why for x in located}
        why = (
            next(iter(whys))
            if len(whys) == 1 and None not in whys
            else f"budget spent ({used} of {target.max_trials} trials)"
        )
        at = f", at {loc.at:g}" if target.find == "peak" else ""
        where = f"{target.find} of {target.axis} between {loc.lo:g} and {loc.hi:g}{at} ({why})"
    values = sorted(_axis_values(spec, target.axis))
    lo, hi = float(values[0]), float(values[-1])
    if target.scale == "log":
        points = math.floor(math.log(hi / lo) / math.log(target.resolution)) + 1
    else:
        points = math.floor((hi - lo) / target.resolution) + 1
    dense = points * _per_value(spec, target)
    return (
        f"{where}; {used} trials added, {len(spec.trials)} in all; a dense grid over "
        f"{lo:g}-{hi:g} at resolution {target.resolution:g} would need {dense} trials"
    )


def _sum(a: SweepReport, b: SweepReport) -> SweepReport:
    return dataclasses.replace(
        b,
        already_stored=a.already_stored,
        packs=a.packs + b.packs,
        trials_run=a.trials_run + b.trials_run,
        failed_packs=a.failed_packs + b.failed_packs,
        wall_time_s=a.wall_time_s + b.wall_time_s,
        placements=a.placements + b.placements,
        oom_splits=a.oom_splits + b.oom_splits,
    )
