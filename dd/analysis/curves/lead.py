"""What a curve kind's result leads ``dd report`` with when it is the sweep's main finding.

A grokking sweep also draws epoch-wise curves, a sample-wise one model-wise curves: the page
must open with what the sweep was for (grokking times, the EMC, the model-wise verdict), not
with whichever kind the registry computes first. Of the kinds with a result, the one of
highest ``rank`` leads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Lead:
    """``title``: the finding's heading; ``lines(result)``: the verdict and times;
    ``figures``: the static figures shown under it (those written); ``curves``: the curve
    kind drawn interactively under it; ``sections``: the kind's own tables move up with it."""

    rank: int
    title: str
    lines: Callable[[Any], list[str]]
    figures: tuple[str, ...] = ()
    curves: str | None = None
    sections: bool = False
