"""Measured step times per device kind, from which the execution plan is chosen.

``dd/engine/cost_tables/<device kind>.json`` (the kind is ``jax.devices()[0].device_kind``, lower
case, runs of other characters as ``-``: ``cpu``, ``nvidia-h100-80gb-hbm3``) holds what
``benchmarks/cost_table.py`` (part of ``make bench``) measured on such a device::

    {"device_kind": "cpu", "command": "...", "jax": "0.10.2",
     "step_seconds": {"cnn": {"sequential": [{"width": 16, "replicas": 1, "seconds": 0.004}],
                              "vmap": [{"width": 16, "replicas": 4, "seconds": 0.013}],
                              "block": [{"sum_width": 16, "replicas": 4, "seconds": 0.009}]}}}

``step_seconds[family][plan]`` lists one training step (forward, gradient, update) of a pack
of ``replicas`` replicas of program width ``width``; a block entry gives instead the sum of
its replicas' own widths, ``sum_width`` (its program's base width). Other top-level keys may
sit beside ``step_seconds``: ``buckets`` holds a family's compile seconds, pack-step
overhead and FLOP rate, from which ``dd.plan.buckets`` chooses how many programs a sweep's widths
compile (``benchmarks/bucket_costs.py``); readers ignore what they do not ask for. A
device kind, family or program width the table does not hold leaves the choice to
``dd.engine.train.execution_plan``'s fallback rule. ``python benchmarks/cost_table.py`` (in
``make bench``) measures and rewrites the table of the device it runs on (docs/bench.md,
"Block packs"). ``$DD_COST_TABLES`` names another folder of such tables (``use_tables``).

A table that does not read as that shape (truncated, garbled, wrong types) is ignored with a
one-line warning naming it: the fallback rule plans, as for a device without a table.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

TABLES = Path(__file__).resolve().parent / "cost_tables"
PLANS = ("sequential", "vmap", "block")


class Choice(NamedTuple):
    """The plan of least estimated pack-step time, and for a block plan the sum of widths a
    block program packs up to (0 otherwise)."""

    plan: str
    block_width: int


def kind_slug(device_kind: str) -> str:
    """A device kind as a file name: lower case, other characters as ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", device_kind.lower()).strip("-")


_folder = [TABLES]  # the tables this process plans by (use_tables)


def use_tables(folder: str | Path | None) -> None:
    """Plan by the tables in ``folder`` (``Settings.cost_tables``, set where a command or a
    worker starts); None: the shipped ones."""
    _folder[0] = TABLES if folder is None else Path(folder).expanduser()


def load_table(device_kind: str, tables: Path | None = None) -> dict:
    """The table of ``device_kind`` (empty when none is there, or when it is damaged)."""
    return _load(kind_slug(device_kind), tables or _folder[0])


@functools.cache
def _load(slug: str, tables: Path) -> dict:
    path = tables / f"{slug}.json"
    if not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text())
        _check(table)
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError included
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(
            f"warning: cost table {path} is damaged ({reason}); ignored: plans follow the "
            "fallback rule (python benchmarks/cost_table.py measures it again)",
            file=sys.stderr,
        )
        return {}
    return table


def _check(table: object) -> None:
    """A ValueError naming the first entry that is not of the shape the readers take."""

    def number(value: object, where: str) -> None:  # seconds may be 0, counts and rates not
        least = 0 if where.endswith(("seconds", "_s")) else 1e-300
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= least:
            raise ValueError(f"{where}: {value!r} is not a number {'>=' if least == 0 else '>'} 0")

    def mapping(value: object, where: str) -> dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: {value!r} is not an object")
        return value

    mapping(table, "the table")
    for family, plans in mapping(table.get("step_seconds", {}), "step_seconds").items():
        for plan, entries in mapping(plans, f"step_seconds.{family}").items():
            where = f"step_seconds.{family}.{plan}"
            if not isinstance(entries, list):
                raise ValueError(f"{where}: {entries!r} is not a list")
            keys = ("sum_width" if plan == "block" else "width", "replicas", "seconds")
            for i, entry in enumerate(entries):
                for key in keys:
                    number(mapping(entry, f"{where}[{i}]").get(key), f"{where}[{i}].{key}")
    fields = ("compile_s", "step_overhead_s", "flops_per_s")
    for family, entry in mapping(table.get("buckets", {}), "buckets").items():
        if set(mapping(entry, f"buckets.{family}")) != set(fields):
            raise ValueError(f"buckets.{family}: {entry!r} does not hold exactly {fields}")
        for key in fields:
            number(entry[key], f"buckets.{family}.{key}")


def cut(widths: list[int], most: int) -> list[list[int]]:
    """Consecutive replicas cut into block programs whose widths sum to at most ``most``
    (0: no limit; a replica wider than it alone)."""
    out: list[list[int]] = []
    total = 0
    for r, w in enumerate(widths):
        if out and (not most or total + w <= most):
            out[-1].append(r)
            total += w
        else:
            out.append([r])
            total = w
    return out


def _nearest(entries: list[dict], replicas: int) -> dict:
    """The entry of most replicas not above ``replicas``, else the one of fewest."""
    below = [e for e in entries if e["replicas"] <= replicas]
    if below:
        return max(below, key=lambda e: e["replicas"])
    return min(entries, key=lambda e: e["replicas"])


def _block_seconds(entries: list[dict], total: int) -> float:
    """A block program's step time at a sum of widths ``total``: linear between measured
    sums, the smallest's time below them, proportional past the largest."""
    points = sorted((e["sum_width"], e["seconds"]) for e in entries)
    if total <= points[0][0]:
        return points[0][1]
    for (s0, t0), (s1, t1) in zip(points, points[1:], strict=False):
        if total <= s1:
            return t0 + (t1 - t0) * (total - s0) / (s1 - s0)
    return points[-1][1] * total / points[-1][0]


def choose(
    table: dict, family: str, width: int, widths: list[int], plans: tuple[str, ...] = PLANS
) -> Choice | None:
    """The plan among ``plans`` of least estimated step time for a pack of replicas of own
    ``widths`` in a program of width ``width``; None when the table has no entry for it.

    Sequential: len(widths) steps of the one-replica entry; vmap: the entry of nearest
    replica count, scaled to the pack's; block: the pack cut at the measured sum of widths
    of least seconds per unit of width, each part's time read off the measured sums."""
    measured = table.get("step_seconds", {}).get(family, {})
    n = len(widths)
    estimates: dict[Choice, float] = {}
    for plan in plans:
        if plan == "block":
            entries = measured.get(plan, [])
            if entries:
                most = min(entries, key=lambda e: e["seconds"] / e["sum_width"])["sum_width"]
                parts = cut(widths, most)
                seconds = sum(_block_seconds(entries, sum(widths[r] for r in g)) for g in parts)
                estimates[Choice(plan, most)] = seconds
            continue
        entries = [e for e in measured.get(plan, []) if e["width"] == width]
        if entries:
            entry = _nearest(entries, n)
            estimates[Choice(plan, 0)] = entry["seconds"] / entry["replicas"] * n
    if not any(c.plan != "block" for c in estimates):
        return None  # no entry at this program width: block alone is no comparison
    return min(estimates, key=estimates.get)
