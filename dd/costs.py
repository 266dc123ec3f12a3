"""Measured step times per device kind, from which the execution plan is chosen.

``dd/cost_tables/<device kind>.json`` (the kind is ``jax.devices()[0].device_kind``, lower
case, runs of other characters as ``-``: ``cpu``, ``nvidia-h100-80gb-hbm3``) holds what
``benchmarks/cost_table.py`` (part of ``make bench``) measured on such a device::

    {"device_kind": "cpu", "command": "...", "jax": "0.10.2",
     "step_seconds": {"cnn": {"sequential": [{"width": 16, "replicas": 1, "seconds": 0.004}],
                              "vmap": [{"width": 16, "replicas": 4, "seconds": 0.013}],
                              "block": [{"width": 16, "replicas": 4, "seconds": 0.009}]}}}

``step_seconds[family][plan]`` lists one training step (forward, gradient, update) of a pack
of ``replicas`` replicas of program width ``width`` (a block entry packs them side by side:
sum of widths ``width * replicas``). Other top-level keys may sit beside ``step_seconds``
(compile times, for instance); readers ignore what they do not ask for. A device kind, family
or program width the table does not hold leaves the choice to ``dd.train.execution_plan``'s
fallback rule.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import NamedTuple

TABLES = Path(__file__).resolve().parent / "cost_tables"
PLANS = ("sequential", "vmap", "block")


class Choice(NamedTuple):
    """The cheapest plan per replica-step, and for a block plan the sum of widths a block
    program packs up to (0 otherwise)."""

    plan: str
    block_width: int


def kind_slug(device_kind: str) -> str:
    """A device kind as a file name: lower case, other characters as ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", device_kind.lower()).strip("-")


@functools.cache
def load_table(device_kind: str, tables: Path = TABLES) -> dict:
    """The table of ``device_kind`` (empty when none is shipped)."""
    path = tables / f"{kind_slug(device_kind)}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _nearest(entries: list[dict], replicas: int) -> dict:
    """The entry of most replicas not above ``replicas``, else the one of fewest."""
    below = [e for e in entries if e["replicas"] <= replicas]
    if below:
        return max(below, key=lambda e: e["replicas"])
    return min(entries, key=lambda e: e["replicas"])


def choose(
    table: dict, family: str, width: int, replicas: int, plans: tuple[str, ...] = PLANS
) -> Choice | None:
    """The plan among ``plans`` of least measured seconds per replica-step for a pack of
    ``replicas`` replicas of program width ``width``; None when the table has no entry."""
    measured = table.get("step_seconds", {}).get(family, {})
    best: tuple[float, Choice] | None = None
    for plan in plans:
        entries = [e for e in measured.get(plan, []) if e["width"] == width]
        if not entries:
            continue
        entry = _nearest(entries, replicas)
        cost = entry["seconds"] / entry["replicas"]
        block_width = width * entry["replicas"] if plan == "block" else 0
        if best is None or cost < best[0]:
            best = (cost, Choice(plan, block_width))
    return None if best is None else best[1]
