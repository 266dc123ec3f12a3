"""Packs: trials that share array shapes, fitted or trained together by one compiled program.

Trials differing only in values that travel as arrays (seed, n_train, label noise, ridge,
and the feature count where the model masks features) share a pack key; each group is cut into packs that fit the memory budget. A pack's id is a
hash of its trial ids, so re-planning the same missing trials gives the same packs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from dd.config import Trial
from dd.spec import Resources, trial_id


@dataclass(frozen=True)
class Pack:
    """The unit of scheduling, fault recovery and storage."""

    id: str
    trial_ids: tuple[str, ...]
    trials: tuple[Trial, ...]


def pack_key(trial: Trial) -> Trial:
    """The trial with every array-valued field neutralised: equal keys share one program."""
    data = dataclasses.replace(trial.data, n_train=1)
    if hasattr(data, "label_noise"):
        data = dataclasses.replace(data, label_noise=0.0)
    from dd.closed_form import program_width

    model = dataclasses.replace(
        trial.model, n_features=program_width(trial.model, trial.data.input_dim))
    return dataclasses.replace(trial, seed=0, data=data, model=model,
                               fit=dataclasses.replace(trial.fit, ridge=0.0))


def replicas_per_pack(trial: Trial, resources: Resources) -> int:
    """How many replicas like ``trial`` fit the pack memory budget (at least 1)."""
    from dd.closed_form import bytes_per_replica

    budget = resources.memory_gb * 2**30
    return max(1, min(resources.max_pack, int(budget // bytes_per_replica(trial))))


def make_packs(trials: list[Trial], resources: Resources) -> list[Pack]:
    """Group trials by pack key and cut each group to the memory budget (order preserved)."""
    groups: dict[Trial, list[Trial]] = {}
    for t in trials:
        groups.setdefault(pack_key(t), []).append(t)
    packs = []
    for members in groups.values():
        # within a group the largest n_train sizes the replica; plan for it
        biggest = max(members, key=lambda t: t.data.n_train)
        size = replicas_per_pack(biggest, resources)
        for start in range(0, len(members), size):
            chunk = members[start:start + size]
            ids = tuple(trial_id(t) for t in chunk)
            digest = hashlib.sha256(",".join(sorted(ids)).encode()).hexdigest()[:16]
            packs.append(Pack(id=digest, trial_ids=ids, trials=tuple(chunk)))
    return packs
