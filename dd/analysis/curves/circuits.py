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

The rules and their five constants are frozen (issue 31): they were set by reading the sweeps
they report on, so they are now judged on seeds and settings that did not set them (docs/results.md,
"Phase rules on held-out seeds"), and those held-out results must not change them.
A new rule is a new, named rule, reported from then on against data it has not seen.
Their history (``git log -S``): the window's shape (after the test loss's post-memorisation
peak, the rise counted until the test accuracy reaches ``level``), ``JUMP`` and
``EXCLUDED_RISE`` (1.5 in commit 68ec416, lowered to 1.1 in 863b55c) were set in 863b55c by
reading the curves of sweeps/grok_transformer_p31.yaml (weight decay 1, seeds 0-2: the
post-memorisation overshoot of the test and excluded losses, then the excluded loss's rise),
before counting the ordering below; the later transformer sweeps (the width sweep,
clock_pizza_p31) were counted with them unchanged.

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
The three cut-offs hold the values commit 68ec416 gave them; sweeps/clock_pizza_p31.yaml
(seeds 0-2) was measured and written up with them (git records no run that set them, and none
changed them since). They are frozen with the phase rules above.
"""

from __future__ import annotations

import math

import numpy as np

# Frozen (issue 31): held-out results must not change these; see the module docstring.
# Nanda et al. 2023 Sec. 5 place the cleanup phase where the test loss falls and the test
# accuracy jumps, with no numeric cut-off; dd's, set in 863b55c on grok_transformer_p31
# seeds 0-2:
JUMP = 0.05  # the test accuracy's rise (5 points) over memorisation's end: cleanup starts
# Nanda et al.: circuit formation is where the excluded loss rises while the restricted loss
# falls; dd's size of that rise, 1.5 in 68ec416, 1.1 since 863b55c (grok_transformer_p31
# seeds 0-2: seed 0's rise of about 6% is under it, seeds 1 and 2 are over it):
EXCLUDED_RISE = 1.1  # the excluded loss must rise at least this many times its minimum
# Zhong et al. 2023 ("The Clock and the Pizza"): gradient symmetricity s near 1 and distance
# irrelevance q low is a pizza, q near 1 with s well below 1 a clock; they publish no
# cut-offs. dd's, unchanged since 68ec416, used for clock_pizza_p31 seeds 0-2:
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
