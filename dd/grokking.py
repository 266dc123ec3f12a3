"""Grokking from stored rows: each trial's time to memorise and to generalise, and its phase.

Pure functions of Arrow tables (the rows of modular-arithmetic sweeps, ``dd.train``).

Phases (Liu et al. 2022), from the accuracies at the end of the budget and the first steps
T_train, T_test at which train / test accuracy reach ``phase_accuracy`` a:
- comprehension: both reach a and T_test <= ``phase_gap_ratio`` x T_train;
- grokking: both reach a, test more than ``phase_gap_ratio`` times later;
- memorisation: train reaches a, test does not; confusion: train does not.
With corrupted labels (Doshi et al.), on the final row, with m the accuracy on the corrupted
pairs against their corrupted labels (memorisation) and v against their true labels (inversion):
- test >= a: inversion if v > m, else coexistence (corrupted labels kept while generalising);
- test < a: memorisation if m >= a; forgetting if the clean training pairs reach a while
  m < a; confusion otherwise.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dd.schema import column_name
from dd.spec import Spec


def first_step(steps: np.ndarray, accuracy: np.ndarray, level: float) -> float:
    """The first step whose accuracy is >= ``level`` (NaN if none: not within the budget)."""
    hit = np.flatnonzero(np.nan_to_num(accuracy, nan=-1.0) >= level)
    return float(steps[hit[0]]) if len(hit) else float("nan")


def _by_trial(rows: pa.Table) -> dict[str, dict[str, np.ndarray]]:
    order = rows.sort_by([("trial_id", "ascending"), ("step", "ascending")])
    ids = np.asarray(order["trial_id"].to_pylist())
    cols = {
        c: order[c].to_numpy(zero_copy_only=False)
        for c in order.column_names
        if not pa.types.is_list(order.schema.field(c).type)
    }
    return {tid: {c: v[ids == tid] for c, v in cols.items()} for tid in dict.fromkeys(ids)}


def _phase(t: dict[str, np.ndarray], spec: Spec, corrupted: bool) -> str:
    a, last = spec.curves.phase_accuracy, -1
    train_acc, test_acc = 1 - t["train_error"], 1 - t["test_error"]
    if corrupted:
        memorised = 1 - t["train_error_noisy"][last]
        inverted = t["noisy_true_acc"][last]
        if test_acc[last] >= a:
            return "inversion" if inverted > memorised else "coexistence"
        if memorised >= a:
            return "memorisation"
        return "forgetting" if 1 - t["train_error_clean"][last] >= a else "confusion"
    t_train = first_step(t["step"], train_acc, a)
    t_test = first_step(t["step"], test_acc, a)
    if np.isnan(t_train):
        return "confusion"
    if np.isnan(t_test):
        return "memorisation"
    return "comprehension" if t_test <= spec.curves.phase_gap_ratio * t_train else "grokking"


def grok_table(rows: pa.Table, spec: Spec) -> pa.Table:
    """One row per trial: its swept values, T_memorise, T_generalise (first steps with train /
    test accuracy >= ``grok_accuracy``, NaN if never), their ratio, final accuracies, phase."""
    level = spec.curves.grok_accuracy
    records = []
    for tid, t in _by_trial(rows).items():
        corrupted = bool(np.nan_to_num(t.get("data_label_noise", np.zeros(1)))[0] > 0)
        t_mem = first_step(t["step"], 1 - t["train_error"], level)
        t_gen = first_step(t["step"], 1 - t["test_error"], level)
        records.append(
            {
                "trial_id": tid,
                **{column_name(a): _plain(t[column_name(a)][0]) for a in spec.axes},
                "t_memorise": t_mem,
                "t_generalise": t_gen,
                "ratio": t_gen / t_mem,
                "final_train_acc": float(1 - t["train_error"][-1]),
                "final_test_acc": float(1 - t["test_error"][-1]),
                "final_memorisation": float(1 - t["train_error_noisy"][-1]),
                "final_inversion": float(t["noisy_true_acc"][-1]),
                "budget": float(t["step"][-1]),
                "phase": _phase(t, spec, corrupted),
            }
        )
    return pa.Table.from_pylist(records)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def phase_axes(spec: Spec) -> tuple[str, str] | None:
    """The two axes of the phase diagram: the spec's, else the first two swept (not seed)."""
    swept = [a for a in spec.axes if a != "seed"]
    x = spec.curves.phase_x or (swept[0] if swept else None)
    y = spec.curves.phase_y or next((a for a in swept if a != x), None)
    return (x, y) if x and y else None


def time_axis(spec: Spec) -> str | None:
    """The swept axis the grokking times are drawn against (the first not seed)."""
    return spec.curves.x or next((a for a in spec.axes if a != "seed"), None)
