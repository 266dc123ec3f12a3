"""What a modular-arithmetic network did on its way to generalising, read from its stored rows.

Pure functions of one trial's evaluations (arrays over its evaluation steps, in order).

Nanda et al. 2023 ("Progress measures for grokking via mechanistic interpretability", Sec. 5)
split grokking into three phases by the progress measures dd stores: *memorisation* (train
loss falls, the test loss does not), *circuit formation* (the restricted loss, the loss of the
key-frequency part of the logits alone, falls while the excluded loss, the loss with that part
removed, rises: the Fourier circuit grows and the memorising one is pushed aside; the test loss
stays high) and *cleanup* (weight decay removes the memorising components: the weight norm and
the test loss fall, the test accuracy jumps). The boundaries, as dd locates them:

- ``memorisation_end``: the first step at which train accuracy reaches ``level``.
- ``cleanup_start``: the first step after ``memorisation_end`` at which the test accuracy
  stands ``JUMP`` above its value there (its jump has begun), for a trial whose test accuracy
  reaches ``level``; null otherwise (no cleanup seen).
- ``circuit_start``: the step of the lowest excluded loss after the test loss's peak that
  follows memorisation (the memorising solution's overshoot) and before ``cleanup_start`` (or
  the last step), provided the excluded loss then rises to at least ``EXCLUDED_RISE`` times
  that minimum before the test accuracy reaches ``level`` (or the end) and the restricted loss
  ends that window lower than it started; null otherwise, or where the task has no restricted
  and excluded loss (ops other than x+y and x-y).

``JUMP`` and ``EXCLUDED_RISE`` were set by reading the curves of the shipped CPU transformer
sweep (sweeps/grok_transformer_p31.yaml: the post-memorisation overshoot of the test and
excluded losses, then the excluded loss's rise), before counting the ordering below.

Nanda et al.'s ordering claim is ``circuit_start < cleanup_start``: the excluded loss rises
before the test accuracy jumps.

Zhong et al. 2023 ("The Clock and the Pizza") tell two algorithms apart by gradient
symmetricity s (the cosine between the correct logit's gradients with respect to the two input
embeddings; a pizza model's logit depends on the inputs through their sum of embeddings, so s
is close to 1) and distance irrelevance q (how little the correct logit depends on a - b; close
to 1 for a clock, low for a pizza). Their figures show the two clusters (clock: q near 1, s
well below 1; pizza: s near 1, q low) but publish no cut-offs: dd's are ``PIZZA_SYMMETRICITY``,
``PIZZA_IRRELEVANCE`` and ``CLOCK_IRRELEVANCE``, and a network in neither region is
``neither``. Only a network that generalised is labelled; one that did not is ``neither``.
"""

from __future__ import annotations

import math

import numpy as np

JUMP = 0.05  # the test accuracy's rise (5 points) that marks the start of cleanup
EXCLUDED_RISE = 1.1  # the excluded loss must rise at least this many times its minimum
PIZZA_SYMMETRICITY = 0.98  # s at least this ...
PIZZA_IRRELEVANCE = 0.6  # ... and q at most this: pizza
CLOCK_IRRELEVANCE = 0.85  # q at least this, s below PIZZA_SYMMETRICITY: clock
ALGORITHMS = ("clock", "pizza", "neither")


def _first(reached: np.ndarray) -> int | None:
    hit = np.flatnonzero(reached)
    return int(hit[0]) if len(hit) else None


def nanda_phases(
    steps: np.ndarray,
    train_acc: np.ndarray,
    test_acc: np.ndarray,
    test_loss: np.ndarray | None,
    restricted_loss: np.ndarray | None,
    excluded_loss: np.ndarray | None,
    level: float,
) -> dict[str, float | None]:
    """The steps ``memorisation_end``, ``circuit_start`` and ``cleanup_start`` (None where
    the phase is not seen), by the rules of the module docstring."""
    out: dict[str, float | None] = dict.fromkeys(
        ("memorisation_end", "circuit_start", "cleanup_start")
    )
    mem = _first(np.nan_to_num(train_acc, nan=-1.0) >= level)
    if mem is None:
        return out
    out["memorisation_end"] = float(steps[mem])
    if test_loss is None:  # rows without the measures of the later phases
        return out
    after = np.arange(len(steps)) >= mem
    acc = np.nan_to_num(test_acc, nan=-1.0)
    gen = _first((acc >= level) & after)
    end = len(steps) - 1
    if gen is not None:
        clean = _first((acc >= acc[mem] + JUMP) & after)
        out["cleanup_start"] = float(steps[clean])
        end = clean
    if restricted_loss is None or excluded_loss is None:
        return out
    start = mem + int(np.argmax(np.nan_to_num(test_loss[mem : end + 1], nan=-np.inf)))
    excluded = np.nan_to_num(excluded_loss, nan=np.inf)
    if end <= start or not np.isfinite(excluded[start : end + 1]).any():
        return out
    low = start + int(np.argmin(excluded[start : end + 1]))
    horizon = gen if gen is not None else len(steps) - 1
    rose = np.nanmax(excluded_loss[low : horizon + 1]) >= EXCLUDED_RISE * excluded[low]
    restricted = restricted_loss[[start, end]]
    fell = np.isfinite(restricted).all() and restricted[1] < restricted[0]
    if rose and fell:
        out["circuit_start"] = float(steps[low])
    return out


def algorithm(grad_symmetricity: float, distance_irrelevance: float, generalised: bool) -> str:
    """``clock``, ``pizza`` or ``neither`` (Zhong et al.'s measures, dd's cut-offs above)."""
    s, q = grad_symmetricity, distance_irrelevance
    if not generalised or s is None or q is None or math.isnan(s) or math.isnan(q):
        return "neither"
    if s >= PIZZA_SYMMETRICITY and q <= PIZZA_IRRELEVANCE:
        return "pizza"
    if q >= CLOCK_IRRELEVANCE and s < PIZZA_SYMMETRICITY:
        return "clock"
    return "neither"
