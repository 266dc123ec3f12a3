"""Packs: trials that share array shapes, fitted or trained together by one compiled program.

Trials differing only in values that travel as arrays share a pack key: seed, n_train and
label noise always; ridge and (for raw features) the feature count for closed-form fits;
learning rate and weight decay for trained networks. Widths of a family that pads share a
program as the sweep's measured costs choose (``dd.plan.buckets``). Each group is cut into packs
that fit the memory budget. A pack's id is a hash of its trial ids, so re-planning the same missing
trials gives the same packs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from dd.plan.buckets import backend_of, choose, costs
from dd.plan.runners import runner_of
from dd.plan.sweep import Resources
from dd.spec.config import Trial
from dd.spec.ids import trial_id


@dataclass(frozen=True)
class Pack:
    """The unit of scheduling, fault recovery and storage."""

    id: str
    trial_ids: tuple[str, ...]
    trials: tuple[Trial, ...]
    n_rows: int  # training rows every replica is padded to: the largest n_train of its group
    n_replicas: int  # replicas the program runs: every pack of a group runs the same count
    key: Trial  # the pack key (``pack_key``): the program every trial of the pack trains in

    def padded_trials(self) -> list[Trial]:
        """The trials, repeated at the end up to ``n_replicas`` (their extra results unused),
        so that every pack of a group has the same shapes and reuses one compiled program."""
        return list(self.trials) + [self.trials[-1]] * (self.n_replicas - len(self.trials))


def pack_key(trial: Trial, width: int | None = None) -> Trial:
    """The trial with every array-valued field neutralised: equal keys share one program.
    Its model is at ``width`` where given (a program width ``dd.plan.buckets`` chose), else at its
    family's program width."""
    return runner_of(trial).key(trial, width)


def _program_keys(groups: list[list[Trial]], backend: str) -> list[Trial]:
    """Per group of alike trials (one model config each), its pack key: widths that pad share
    a program as ``dd.plan.buckets`` chooses over the trials alike but for their width."""
    keys: list[Trial | None] = [None] * len(groups)
    width_free: dict[Trial, list[int]] = {}
    for i, members in enumerate(groups):
        first, runner = members[0], runner_of(members[0])
        if not runner.pads(first) or not costs(runner.family(first), backend):
            keys[i] = pack_key(first)  # one program per width, or the family's own rule
        else:
            width_free.setdefault(pack_key(first, width=1), []).append(i)
    for indices in width_free.values():
        trials = [t for i in indices for t in groups[i]]
        widths = choose(trials, costs(runner_of(trials[0]).family(trials[0]), backend))
        for i in indices:
            keys[i] = pack_key(groups[i][0], widths[groups[i][0].model.width])
    return keys


def replicas_per_pack(trial: Trial, resources: Resources) -> int:
    """How many replicas like ``trial`` fit the pack memory budget (at least 1)."""
    # a padded trial takes its program's memory
    budget = resources.memory_gb * 2**30
    per_replica = runner_of(trial).bytes_per_replica(trial)
    return max(1, min(resources.max_pack, int(budget // per_replica)))


def make_packs(
    trials: list[Trial], resources: Resources, planned: list[Trial] | None = None
) -> list[Pack]:
    """Group ``trials`` by pack key and cut each group to the memory budget (order kept).

    Groups are sized and cut over ``planned`` (default: ``trials``), the whole sweep, so the
    pack of a trial does not depend on which other trials are already stored: a resumed sweep
    re-plans the same pack ids and finds their checkpoints.
    """
    todo = {trial_id(t) for t in trials}
    # the key ignores the seed: trials sharing their other parts (as a grid's trials share
    # them, dd.spec.grid.expand_trials) share one key, computed once; the trials stay alive, so
    # the ids of their parts are not reused meanwhile
    planned = planned if planned is not None else trials
    by_parts: dict[tuple[int, ...], list[Trial]] = {}
    for t in planned:
        by_parts.setdefault((id(t.data), id(t.model), id(t.fit), id(t.train)), []).append(t)
    backend = backend_of(resources.gpus)
    keys = dict(zip(by_parts, _program_keys(list(by_parts.values()), backend), strict=True))
    groups: dict[Trial, list[Trial]] = {}
    for t in planned:  # in planned order, so that a group's cuts do not move
        groups.setdefault(keys[(id(t.data), id(t.model), id(t.fit), id(t.train))], []).append(t)
    packs = []
    for key, members in groups.items():
        # the group's largest n_train sizes every replica, so all its packs share one program
        biggest = max(members, key=lambda t: t.data.n_train)
        size = replicas_per_pack(runner_of(biggest).sized(biggest, key), resources)
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
                    key=key,
                )
            )
    return packs


def pack_cost(pack: Pack) -> float:
    """A relative estimate of a pack's compute, to start the longest packs first."""
    trial = pack.trials[0]
    return runner_of(trial).cost(trial, pack.key, pack.n_replicas, pack.n_rows)
