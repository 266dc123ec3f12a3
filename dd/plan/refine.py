"""The ``refine:`` section: transitions located, not just sampled (docs/design.md).

    refine: {axis: model.width, find: threshold, resolution: 1, max_trials: 60}

After the grid runs, dd locates the target along ``axis`` from the stored rows and adds axis
values where its bracket is, round after round (``dd.analysis.refine``), until the bracket is
within ``resolution`` or ``max_trials`` trials have been added; where noise dominates a peak
it adds seeds at the peak and its neighbours instead. A list of such mappings locates several
targets. The values and seeds added are stored with the sweep (``refine.json``): the same
command run again extends its grid with them (seeds as ``also`` blocks of the grid), so it
trains nothing and ``dd sweep --dry-run`` shows them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from dd.spec.config import Trial
from dd.spec.errors import SpecError
from dd.spec.fields import bounded, build, field_kind, one_of
from dd.store.paths import atomic_write_bytes
from dd.store.sweep import SweepStore

FINDS = ("threshold", "peak", "boundary")
STATE_FILE = "refine.json"


@dataclass(frozen=True, kw_only=True)
class Refine:
    """One target: ``threshold`` (the smallest x whose mean final train metric is under
    ``curves.threshold_tol``), ``peak`` (the test-metric peak past the best smaller x, with
    its 95% interval over seeds; seeds are added around it where noise dominates) or
    ``boundary`` (the smallest x where most seeds reach ``curves.grok_accuracy`` test
    accuracy within the budget), located along the numeric grid axis ``axis`` to
    ``resolution`` in its units (``scale: log``: a ratio > 1, new points at geometric means),
    adding at most ``max_trials`` trials."""

    axis: str
    find: str = one_of("threshold", FINDS)
    resolution: float = bounded(1.0, lo=0.0, lo_open=True)
    max_trials: int = bounded(60, lo=1)
    scale: str = one_of("linear", ("linear", "log"))

    def check(self, path: str) -> None:
        if self.scale == "log" and self.resolution <= 1:
            raise SpecError(
                f"{path}.resolution",
                f"must be a ratio > 1 on a log scale (got {self.resolution:g})",
            )

    @property
    def integer(self) -> bool:
        return field_kind(Trial, self.axis) is int


def parse_refine(raw: Any, zipped: set[str], axes: list[str], trial: Trial) -> tuple[Refine, ...]:
    """The targets of a ``refine:`` section, each ``axis`` a numeric grid axis of its own
    (not seed, not in a zip group); a ``boundary`` needs test accuracies (``trial``'s data
    is a classification task)."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    if isinstance(raw, list) and not raw:
        raise SpecError("refine", "empty list; give at least one target")
    targets = []
    for i, item in enumerate(items):
        path = f"refine[{i}]" if isinstance(raw, list) else "refine"
        target = build(Refine, item, path)
        numeric = [a for a in axes if a != "seed" and a not in zipped and _numeric(a)]
        if target.axis not in numeric:
            what = "in a zip group" if target.axis in zipped else "not a numeric grid axis"
            raise SpecError(
                f"{path}.axis",
                f"{target.axis!r} is {what}; the numeric grid axes: "
                + (", ".join(numeric) or "none"),
            )
        if target.find == "boundary" and not trial.data.CLASSIFICATION:
            raise SpecError(
                f"{path}.find",
                "boundary reads test accuracy: a classification (grokking) sweep; "
                "this one is regression (use threshold or peak)",
            )
        targets.append(target)
    keys = [(t.axis, t.find) for t in targets]
    if len(set(keys)) < len(keys):
        raise SpecError("refine", "a target (axis and find) appears more than once")
    return tuple(targets)


def _numeric(dotted: str) -> bool:
    kind = field_kind(Trial, dotted)
    return kind in (int, float)


def base_key(mapping: dict) -> str:
    """What a stored refinement belongs to: the spec without its ``refine`` section (more
    budget or a finer resolution continues a refinement; any other change starts afresh)."""
    rest = {k: v for k, v in mapping.items() if k != "refine"}
    return json.dumps(rest, sort_keys=True, default=str)


def read_state(store: SweepStore, mapping: dict) -> dict:
    """The stored refinement of this spec: {"added": {axis: [values]}, "seeds": {axis:
    [{"at": [values], "seed": [seeds]}]}, "rounds": [...]}; an empty one when none is stored
    or it belongs to another spec."""
    path = store.dir / STATE_FILE
    fresh = {"base": base_key(mapping), "added": {}, "seeds": {}, "rounds": []}
    if not path.is_file():
        return fresh
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return fresh  # a damaged file: the rounds are located again from the stored rows
    if not isinstance(state, dict) or state.get("base") != fresh["base"]:
        return fresh
    state.setdefault("seeds", {})  # stored before seeds were added
    return state


def stored_additions(store: SweepStore) -> dict[str, tuple[float, ...]]:
    """The axis values the sweep's refinement rounds added ({axis: values}), for figures to
    mark; none when no refinement is stored or its file is damaged."""
    path = store.dir / STATE_FILE
    try:
        added = json.loads(path.read_text())["added"] if path.is_file() else {}
        return {str(a): tuple(float(v) for v in values) for a, values in added.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def stored_seed_sites(store: SweepStore) -> dict[str, tuple[float, ...]]:
    """The axis values at which the sweep's refinement rounds added seeds ({axis: values}),
    for figures to mark; none when no refinement is stored or its file is damaged."""
    path = store.dir / STATE_FILE
    try:
        seeds = json.loads(path.read_text()).get("seeds", {}) if path.is_file() else {}
        return {
            str(axis): tuple(sorted({float(x) for entry in entries for x in entry["at"]}))
            for axis, entries in seeds.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def write_state(store: SweepStore, state: dict) -> None:
    atomic_write_bytes(store.dir / STATE_FILE, json.dumps(state).encode())


def extended(mapping: dict, added: dict[str, list], seeds: dict[str, list] | None = None) -> dict:
    """A copy of ``mapping`` whose grid axes hold the ``added`` values after their own, and
    whose grid holds, per entry of ``seeds`` ({axis: [{"at": [x, ...], "seed": [s, ...]}]}),
    an ``also`` block: those seeds at those values of the axis, every other axis as the grid
    has it (``dd.spec.grid``)."""
    out = copy.deepcopy(mapping)
    for axis, values in added.items():
        if not values:
            continue
        raw = out["grid"][axis]
        out["grid"][axis] = (raw if isinstance(raw, list) else [raw]) + list(values)
    blocks = [
        {axis: list(entry["at"]), "seed": list(entry["seed"])}
        for axis, entries in (seeds or {}).items()
        for entry in entries
    ]
    if blocks:
        out["grid"]["also"] = list(out["grid"].get("also", [])) + blocks
    return out


def refine_line(store: SweepStore) -> str | None:
    """``dd status``'s line for a refinement: its last round, and whether its packs ran."""
    path = store.dir / STATE_FILE
    try:
        rounds = json.loads(path.read_text())["rounds"] if path.is_file() else []
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not rounds:
        return None
    last = rounds[-1]
    where = f"between {last['lo']:g} and {last['hi']:g}" if last.get("lo") is not None else "open"
    done = "its packs ran" if last.get("finished") else "its packs are to run or running"
    seeds = last.get("seeds_added") or []
    more = f", +{len(seeds)} seeds at {len(last.get('seeds_at') or [])} values" if seeds else ""
    return (
        f"refine: round {last['round']}, {last['find']} of {last['axis']} {where}; "
        f"+{len(last['added'])} values{more}, {done}"
    )
