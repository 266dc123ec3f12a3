"""Packs: trials that share array shapes, fitted or trained together by one compiled program.

Trials differing only in values that travel as arrays share a pack key: seed, n_train and
label noise always; ridge and (for raw features) the feature count for closed-form fits;
learning rate and weight decay for trained networks; each group is cut into packs that fit
the memory budget. A pack's id is a hash of its trial ids, so re-planning the same missing
trials gives the same packs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from dd.config import Trial
from dd.ids import trial_id
from dd.spec import Resources


@dataclass(frozen=True)
class Pack:
    """The unit of scheduling, fault recovery and storage."""

    id: str
    trial_ids: tuple[str, ...]
    trials: tuple[Trial, ...]
    n_rows: int  # training rows every replica is padded to: the largest n_train of its group
    n_replicas: int  # replicas the program runs: every pack of a group runs the same count

    def padded_trials(self) -> list[Trial]:
        """The trials, repeated at the end up to ``n_replicas`` (their extra results unused),
        so that every pack of a group has the same shapes and reuses one compiled program."""
        return list(self.trials) + [self.trials[-1]] * (self.n_replicas - len(self.trials))


def pack_key(trial: Trial) -> Trial:
    """The trial with every array-valued field neutralised: equal keys share one program."""
    data = trial.data.neutral()
    if trial.model.CLOSED_FORM:
        from dd.closed_form import program_width

        model = dataclasses.replace(
            trial.model, n_features=program_width(trial.model, trial.data.input_dim)
        )
        return dataclasses.replace(
            trial, seed=0, data=data, model=model, fit=dataclasses.replace(trial.fit, ridge=0.0)
        )
    from dd.families import program_trial

    train = dataclasses.replace(trial.train, lr=1.0, weight_decay=0.0)
    return dataclasses.replace(program_trial(trial), seed=0, data=data, train=train)


def replicas_per_pack(trial: Trial, resources: Resources) -> int:
    """How many replicas like ``trial`` fit the pack memory budget (at least 1)."""
    if trial.model.CLOSED_FORM:
        from dd.closed_form import bytes_per_replica
    else:
        from dd.memory import bytes_per_replica  # a padded trial takes its program's memory

    budget = resources.memory_gb * 2**30
    return max(1, min(resources.max_pack, int(budget // bytes_per_replica(trial))))


def make_packs(
    trials: list[Trial], resources: Resources, planned: list[Trial] | None = None
) -> list[Pack]:
    """Group ``trials`` by pack key and cut each group to the memory budget (order kept).

    Groups are sized and cut over ``planned`` (default: ``trials``), the whole sweep, so the
    pack of a trial does not depend on which other trials are already stored: a resumed sweep
    re-plans the same pack ids and finds their checkpoints.
    """
    todo = {trial_id(t) for t in trials}
    groups: dict[Trial, list[Trial]] = {}
    # the key ignores the seed: trials sharing their other parts (as a grid's trials share
    # them, dd.grid.expand_trials) share one key, computed once; the trials stay alive, so
    # the ids of their parts are not reused meanwhile
    by_parts: dict[tuple[int, ...], list[Trial]] = {}
    for t in planned if planned is not None else trials:
        parts = (id(t.data), id(t.model), id(t.fit), id(t.train))
        members = by_parts.get(parts)
        if members is None:
            members = by_parts[parts] = groups.setdefault(pack_key(t), [])
        members.append(t)
    packs = []
    for members in groups.values():
        # the group's largest n_train sizes every replica, so all its packs share one program
        biggest = max(members, key=lambda t: t.data.n_train)
        size = replicas_per_pack(biggest, resources)
        for start in range(0, len(members), size):
            chunk = [t for t in members[start : start + size] if trial_id(t) in todo]
            if not chunk:
                continue
            ids = tuple(trial_id(t) for t in chunk)
            digest = hashlib.sha256(",".join(sorted(ids)).encode()).hexdigest()[:16]
            packs.append(
                Pack(
                    id=digest,
                    trial_ids=ids,
                    trials=tuple(chunk),
                    n_rows=biggest.data.n_train,
                    n_replicas=min(size, len(members)),
                )
            )
    return packs


def pack_cost(pack: Pack) -> float:
    """A relative estimate of a pack's compute, to start the longest packs first."""
    trial = pack.trials[0]
    if trial.model.CLOSED_FORM:
        from dd.closed_form import program_width

        p = program_width(trial.model, trial.data.input_dim)
        return pack.n_replicas * pack.n_rows * p * min(pack.n_rows, p)
    from dd.families import n_params, program_trial

    return pack.n_replicas * pack.n_rows * trial.train.epochs * n_params(program_trial(trial))
