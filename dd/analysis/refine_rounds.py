"""Refinement rounds: run the grid, locate each ``refine:`` target in the stored rows, add the
values that bisect its bracket as new grid values (every seed and series of the spec), run
them as new packs through the same driver, and repeat until each bracket is within its
resolution or its ``max_trials`` are spent. Where noise dominates a peak (``Located.seed_xs``)
a round adds seeds instead, new seed values beyond the grid's at the peak and its neighbours
(every series), until the peak's interval stops shrinking.

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
from dd.analysis.refine import Located, describe, locate
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
    spec = prepare(extended(given.mapping, state["added"], state["seeds"]))
    total = run(spec)
    for entry in state["rounds"]:
        entry["finished"] = True  # its packs ran in the run above
    while not total.failed_packs:
        found = {t: locate(_rows(store, spec), spec, t) for t in spec.refine}
        number = len(state["rounds"]) + 1
        adds = _choose(spec, state, found)
        if not any(values or block for values, block in adds.values()):
            break
        for target, (values, block) in adds.items():
            if not values and not block:
                continue
            state["added"].setdefault(target.axis, []).extend(values)
            cost = len(values) * _per_value(spec, target)
            if block:
                state["seeds"].setdefault(target.axis, []).append(block)
                cost += len(block["at"]) * len(block["seed"]) * _series(spec, target)
            _remember(state, target, found[target], bool(block))
            used = state.setdefault("used", {})
            used[_key(target)] = used.get(_key(target), 0) + cost
            state["rounds"].append(_record(number, target, found[target], values, block, cost))
            say(_round_line(number, target, found[target], values, block))
        write_state(store, state)  # before the packs run: an interrupt resumes this round
        spec = prepare(extended(given.mapping, state["added"], state["seeds"]))
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


def _field(trial, axis: str):
    if axis == "seed":
        return trial.seed
    section, *path = axis.split(".")
    node = getattr(trial, section)
    for part in path:
        node = getattr(node, part)
    return node


def _axis_values(spec: Spec, axis: str) -> set:
    return {_field(trial, axis) for trial in spec.trials}


def _series(spec: Spec, target: Refine) -> int:
    """The series of the grid (its points at one axis value and one seed): the trials one new
    seed at one axis value adds."""
    x0 = min(_axis_values(spec, target.axis))
    s0 = min(t.seed for t in spec.trials)
    return sum(1 for t in spec.trials if t.seed == s0 and _field(t, target.axis) == x0)


def _grid_seeds(spec: Spec, target: Refine) -> int:
    """The grid's seeds per axis value (the fewest any value has: seeds added sit at a few)."""
    seeds: dict = {}
    for t in spec.trials:
        seeds.setdefault(_field(t, target.axis), set()).add(t.seed)
    return min(len(v) for v in seeds.values())


def _per_value(spec: Spec, target: Refine) -> int:
    """Trials one value of the axis adds: every seed and series of the grid."""
    return _series(spec, target) * _grid_seeds(spec, target)


def _stalled(state: dict, target: Refine, loc: Located) -> bool:
    """Whether seeds added at this peak left its interval no narrower (and its significance
    unchanged): more of them would not locate it."""
    before = state.get("intervals", {}).get(_key(target), {}).get(repr(loc.series))
    if before is None or loc.ci is None:
        return False
    at, lo, hi, significant = before
    narrower = loc.ci[1] - loc.ci[0] < hi - lo or (loc.significant and not significant)
    return at == loc.at and not narrower


def _remember(state: dict, target: Refine, located: list[Located], seeded: bool) -> None:
    """Each series' peak interval when its round adds seeds (for ``_stalled``); a round that
    adds points forgets them (the next seeds meet new neighbours)."""
    kept = state.setdefault("intervals", {})
    kept[_key(target)] = {
        repr(loc.series): [loc.at, loc.ci[0], loc.ci[1], loc.significant]
        for loc in located
        if seeded and loc.ci is not None
    }


def _choose(spec: Spec, state: dict, found: dict[Refine, list[Located]]) -> dict:
    """Each target's new values (its series' bisecting values not yet in the grid) and new
    seeds (``{"at": xs, "seed": seeds}`` or None: as many new seeds as the grid has, beyond
    its largest, at the xs of the series where noise dominates the peak and more seeds still
    shrink its interval), as many as its remaining ``max_trials`` pay for."""
    adds: dict[Refine, tuple[list, dict | None]] = {}
    taken: dict[str, set] = {}
    top = max(t.seed for t in spec.trials)
    for target, located in found.items():
        present = taken.setdefault(target.axis, set(_axis_values(spec, target.axis)))
        values = sorted({v for loc in located for v in loc.new} - present)
        left = target.max_trials - state.get("used", {}).get(_key(target), 0)
        values = values[: max(0, left // _per_value(spec, target))]
        present.update(values)
        left -= len(values) * _per_value(spec, target)
        cast = int if target.integer else float
        xs = sorted(
            {cast(x) for loc in located if not _stalled(state, target, loc) for x in loc.seed_xs}
        )
        block = None
        if xs:
            many = min(_grid_seeds(spec, target), left // (len(xs) * _series(spec, target)))
            if many > 0:
                block = {"at": xs, "seed": list(range(top + 1, top + 1 + many))}
                top += many
        adds[target] = (values, block)
    return adds


def _widest(located: list[Located]) -> Located | None:
    open_ = [loc for loc in located if loc.lo is not None]
    return max(open_, key=lambda loc: loc.width) if open_ else None


def _short(axis: str) -> str:
    return axis.split(".")[-1]


def _round_line(
    number: int, target: Refine, located: list[Located], values: list, block: dict | None
) -> str:
    loc = _widest(located)
    short = _short(target.axis)
    if loc is None:
        where = f"{target.find} not bracketed"
    elif target.find == "peak":
        where = describe(target, loc).replace(f" of {target.axis}", "", 1)
    else:
        where = f"{target.find} between {short} {loc.lo:g} and {loc.hi:g} ({loc.seeds} seeds)"
    many = f" (widest of {len(located)} series)" if len(located) > 1 else ""
    parts = []
    if values or not block:
        parts.append(f"+{len(values)} {short}{'s' if len(values) != 1 else ''}")
    if block:
        seeds, at = block["seed"], ", ".join(f"{x:g}" for x in block["at"])
        parts.append(
            f"+{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({_span(seeds)}) at {short} {at}"
        )
    return f"round {number}: {where}{many}; " + ", ".join(parts)


def _span(seeds: list) -> str:
    return f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"


def _record(
    number: int, target: Refine, located: list[Located], values: list, block, cost: int
) -> dict:
    loc = _widest(located)
    return {
        **_where(number, target, loc),
        "added": [float(v) for v in values],
        "seeds_at": [float(x) for x in block["at"]] if block else [],
        "seeds_added": list(block["seed"]) if block else [],
        "trials_added": cost,
        "finished": False,
    }


def _where(number: int, target: Refine, loc: Located | None) -> dict:
    ci = None if loc is None else loc.ci
    return {
        "round": number,
        "find": target.find,
        "axis": target.axis,
        "lo": None if loc is None else loc.lo,
        "hi": None if loc is None else loc.hi,
        "at": None if loc is None else loc.at,
        "ci_lo": None if ci is None else ci[0],
        "ci_hi": None if ci is None else ci[1],
        "significant": None if loc is None else loc.significant,
        "seeds": 0 if loc is None else loc.seeds,
    }


def _write_table(store: SweepStore, rounds: list[dict], found: dict) -> None:
    """``curves/refine.parquet``: each round's bracket and values, then (``found``) where
    each target lies now."""
    records = [dict(r) for r in rounds]
    for target, located in found.items():
        loc = _widest(located) or (located[0] if located else None)
        records.append(
            {
                **_where(len(rounds) + 1, target, loc),
                "added": [],
                "seeds_at": [],
                "seeds_added": [],
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
                ("ci_lo", pa.float64()),
                ("ci_hi", pa.float64()),
                ("significant", pa.bool_()),
                ("seeds", pa.int64()),
                ("added", pa.list_(pa.float64())),
                ("seeds_at", pa.list_(pa.float64())),
                ("seeds_added", pa.list_(pa.int64())),
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
        whys = {
            "interval stopped shrinking with more seeds" if _stalled(state, target, x) else x.why
            for x in located
        }
        why = (
            next(iter(whys))
            if len(whys) == 1 and None not in whys
            else f"budget spent ({used} of {target.max_trials} trials)"
        )
        if target.find == "peak":
            where = f"{describe(target, loc)}, between {loc.lo:g} and {loc.hi:g} ({why})"
        else:
            where = f"{target.find} of {target.axis} between {loc.lo:g} and {loc.hi:g} ({why})"
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
