"""Packs: trials that share array shapes, fitted or trained together by one compiled program.

Trials differing only in values that travel as arrays share a pack key: seed, n_train and
label noise always; ridge and (for raw features) the feature count for closed-form fits;
learning rate, weight decay, the Grokfast filter's alpha and lamb and the perpendicular
gradient's on/off for trained networks (a group's program has the transform where one of its
trials has it on: ``Runner.program``). Widths of a family that pads share a program as its
fixed ladder says (``Family.program_width``: a function of the trial alone, so a trial trains
in the same program whatever its sweep). Each group is cut into packs
that fit the memory budget. A pack's id is a hash of its trial ids, so re-planning the same missing
trials gives the same packs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from dd.plan.runners import runner_of
from dd.plan.sweep import Resources
from dd.spec.config import Trial
from dd.spec.expand import CHUNK, ids_of


@dataclass(frozen=True)
class Pack:
    """The unit of scheduling, fault recovery and storage."""

    id: str
    trial_ids: tuple[str, ...]
    trials: tuple[Trial, ...]
    n_rows: int  # training rows every replica is padded to: the largest n_train of its group
    n_replicas: int  # replicas the program runs: every pack of a group runs the same count
    # the program every trial of the pack (and of its group) trains in: the pack key
    # (``pack_key``) with what the group needs (``Runner.program``: the perpendicular gradient)
    key: Trial

    def padded_trials(self) -> list[Trial]:
        """The trials, repeated at the end up to ``n_replicas`` (their extra results unused),
        so that every pack of a group has the same shapes and reuses one compiled program."""
        return list(self.trials) + [self.trials[-1]] * (self.n_replicas - len(self.trials))


def pack_key(trial: Trial) -> Trial:
    """The trial with every array-valued field neutralised: equal keys share one program.
    Its model is at its family's program width (``dd.models.registry.program_trial``)."""
    return runner_of(trial).key(trial)


def replicas_per_pack(trial: Trial, resources: Resources) -> int:
    """How many replicas like ``trial`` fit the pack memory budget (at least 1)."""
    # a padded trial takes its program's memory
    budget = resources.memory_gb * 2**30
    per_replica = runner_of(trial).bytes_per_replica(trial)
    return max(1, min(resources.max_pack, int(budget // per_replica)))


def make_packs(
    trials: Sequence[Trial], resources: Resources, planned: Sequence[Trial] | None = None
) -> list[Pack]:
    """Group ``trials`` by pack key and cut each group to the memory budget (order kept).

    Groups are sized and cut over ``planned`` (default: ``trials``), the whole sweep, so the
    pack of a trial does not depend on which other trials are already stored: a resumed sweep
    re-plans the same pack ids and finds their checkpoints. ``planned`` is walked a chunk at
    a time and its trials' ids taken as computed (``dd.spec.expand.ids_of``): a grid's trials
    are built once more, and only those to run are kept (in their packs).
    """
    todo = set(ids_of(trials))
    planned = planned if planned is not None else trials
    ids = ids_of(planned)
    # the key ignores the seed: trials sharing their other parts (as a grid's trials share
    # them, dd.spec.expand) share one key, computed once; the parts are kept alive here, so
    # their ids are not reused meanwhile
    keys: dict[tuple[int, ...], tuple[list[int], tuple]] = {}  # parts -> their group
    groups: dict[Trial, list[int]] = {}  # key -> positions in planned, in planned order
    held: list[Trial | None] = [None] * len(planned)  # the trials to run, by position
    firsts: dict[Trial, list[Trial]] = {}  # key -> the first trial of each set of its parts
    for start in range(0, len(planned), CHUNK):
        for i, t in enumerate(planned[start : start + CHUNK], start):
            parts = (id(t.data), id(t.model), id(t.fit), id(t.train))
            known = keys.get(parts)
            if known is None:
                erased = pack_key(t)
                firsts.setdefault(erased, []).append(t)
                group = groups.setdefault(erased, [])
                known = keys[parts] = (group, (t.data, t.model, t.fit, t.train))
            known[0].append(i)
            if ids[i] in todo:
                held[i] = t
    packs = []
    for erased, members in groups.items():
        # what sizes and programs a group reads its trials' parts alone (never the seed)
        key = runner_of(firsts[erased][0]).program(erased, firsts[erased])
        # the group's largest n_train sizes every replica, so all its packs share one program
        biggest = max(firsts[erased], key=lambda t: t.data.n_train)
        size = replicas_per_pack(runner_of(biggest).sized(biggest, key), resources)
        for start in range(0, len(members), size):
            chunk = [i for i in members[start : start + size] if ids[i] in todo]
            if not chunk:
                continue
            chunk_ids = tuple(ids[i] for i in chunk)
            digest = hashlib.sha256(",".join(sorted(chunk_ids)).encode()).hexdigest()[:16]
            packs.append(
                Pack(
                    id=digest,
                    trial_ids=chunk_ids,
                    trials=tuple(held[i] for i in chunk),
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
