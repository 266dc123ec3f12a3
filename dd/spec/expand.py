"""A grid's trials as a lazy sequence: counted from the axes' lengths, checked and given
their ids in one streaming pass, and built again on demand, so that a million-trial grid is
never held as a million ``Trial`` objects (docs/bench.md, "Planning at scale").

Each trial is ``build(Trial, base with the point's values set)``, but each section
(``data``, ``model``, ...) is built and validated once per distinct set of its grid values and
shared by the trials (a scalar section, ``seed``, is not cached). A trial whose parts were
seen before only has its seed checked: every other check reads the parts alone.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from dd.spec.config import SECTIONS, Trial
from dd.spec.errors import SpecError
from dd.spec.fields import convert, init_fields, validate
from dd.spec.grid import Factor, set_dotted
from dd.spec.ids import trial_id

CHUNK = 65_536  # trials built at once where a consumer walks the whole sequence
FIELDS = tuple((f.name, f.default) for f in dataclasses.fields(Trial))  # (each one is given)
CACHED_POINTS = 100_000  # a factor with at most this many points has them made once


def expand_trials(base: dict, factors: Sequence[Factor]) -> GridTrials:
    """One validated trial per grid point (duplicates, by id, dropped; order kept), as a
    ``GridTrials``: the first problem is a ``SpecError`` naming the field and grid point."""
    return GridTrials(_Builder(base, factors))


def ids_of(trials: Sequence[Trial]) -> Sequence[str]:
    """The trial ids of ``trials`` in order: a grid's, as computed once when it was expanded."""
    if isinstance(trials, GridTrials):
        return trials.ids
    return [trial_id(t) for t in trials]


def distinct_parts(trials: Sequence[Trial]) -> Sequence[Trial]:
    """The first trial of each distinct set of parts (data, model, fit, train), in order: for
    checks that read the parts alone (a grid's, without building its trials again)."""
    if isinstance(trials, GridTrials):
        return trials.representatives()
    seen: dict[tuple[int, ...], Trial] = {}
    for t in trials:
        seen.setdefault((id(t.data), id(t.model), id(t.fit), id(t.train)), t)
    return list(seen.values())


class GridTrials(Sequence):
    """The trials of a grid, in grid order: ``len`` and ``ids`` without building any trial,
    items built on demand from the shared parts. ``with_data`` gives the sequence with each
    data part replaced (the resolve stage's data with its facts; ids are unchanged)."""

    def __init__(self, builder: _Builder, state: tuple | None = None, data: dict | None = None):
        self._builder = builder
        self._data = data or {}  # id(data part) -> its replacement
        if state is None:
            state = builder.expand()
        self.ids, self._kept, self._reps = state

    def with_data(self, replaced: dict[int, Any]) -> GridTrials:
        """``replaced``: id(data part as built now) -> its replacement."""
        data = {k: replaced.get(id(v), v) for k, v in self._data.items()}
        data.update((k, v) for k, v in replaced.items() if k in self._builder.data_ids())
        return GridTrials(self._builder, (self.ids, self._kept, self._reps), data)

    def __reduce__(self) -> tuple:  # the replaced data by the part's key, not its id
        keys = {id(v): k for k, v in self._builder.parts.items()}
        state = (self.ids, self._kept, self._reps)
        data = [(keys[i], v) for i, v in self._data.items()]
        return _unpickled, (self._builder, state, data)

    def representatives(self) -> list[Trial]:
        return [self[i] for i in self._reps]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1 or self._kept is not None:
                return [self._trial(i) for i in range(start, stop, step)]
            build = self._builder.trial
            return [build(js, self._data, again=True) for js in self._builder.run(start, stop)]
        n = len(self)
        if not -n <= index < n:
            raise IndexError("trial index out of range")
        return self._trial(index % n)

    def __iter__(self) -> Iterator[Trial]:
        for i in range(len(self)):
            yield self._trial(i)

    def __repr__(self) -> str:
        return f"GridTrials({len(self)} trials)"

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of equal trials in the same order (as a tuple of them was)."""
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # (a sequence of trials, as a tuple compared: by its items)

    def _trial(self, i: int) -> Trial:
        point = self._kept[i] if self._kept is not None else i
        return self._builder.trial(self._builder.indices(point), self._data, again=True)


def _unpickled(builder: _Builder, state: tuple, data: list) -> GridTrials:
    """A pickled ``GridTrials`` again: its replaced data keyed by the parts' new ids."""
    return GridTrials(builder, state, {id(builder.parts[k]): v for k, v in data})


class _Builder:
    """Builds the trial of a grid point (its index into each factor) from the base and the
    shared parts: a seed axis of its own gives the seed, and the parts of the other factors'
    indices are remembered (the most recent ``CACHED_POINTS`` of them)."""

    def __init__(self, base: dict, factors: Sequence[Factor]):
        self.base = base
        self.fields = tuple(init_fields(Trial)[1])  # the section names, in order
        self.parts: dict[Any, Any] = {}  # (section, its grid values) -> the built section
        self.points = [_Points(f) for f in factors]
        self.lengths = [len(p) for p in self.points]
        seeds = [k for k, f in enumerate(factors) if f.names == ("seed",)]
        self.seed_factor = seeds[0] if seeds else None
        self.seeds = factors[seeds[0]].columns()[0] if seeds else None
        self.others = [k for k in range(len(factors)) if k != self.seed_factor]
        swept = {d.split(".")[0] for k in self.others for d in factors[k].names}
        self.swept = [section for section in self.fields if section in swept]
        # the sections no axis sets: built once (the base alone was validated already)
        self.constant = {
            section: self.part(section, ())
            for section in self.fields
            if section in base and section not in swept and not (seeds and section == "seed")
        }
        self.memo: dict[tuple, dict] = {}  # the other factors' indices -> the parts
        self.seed_bound = next(
            f for f in dataclasses.fields(Trial) if f.name == "seed"
        ).metadata.get("bound")

    @property
    def hints(self) -> dict[str, Any]:
        """Trial's resolved annotations (cached by ``init_fields``; not kept, so a spec
        pickles)."""
        return init_fields(Trial)[0]

    def data_ids(self) -> set[int]:
        return {id(v) for (section, _), v in self.parts.items() if section == "data"}

    def indices(self, point: int) -> tuple[int, ...]:
        out = []
        for length in reversed(self.lengths):
            point, j = divmod(point, length)
            out.append(j)
        return tuple(reversed(out))

    def run(self, start: int, stop: int) -> Iterator[tuple[int, ...]]:
        """The indices of the points ``start`` to ``stop`` (excluded), in order."""
        points = itertools.product(*map(range, self.lengths))
        return itertools.islice(points, start, stop)

    def combo(self, js: tuple[int, ...]) -> tuple:
        return tuple(self.points[k][j] for k, j in enumerate(js))

    def part(self, section: str, touched: tuple) -> Any:
        key = (section, touched)  # grid values are scalars: hashable
        if key in self.parts:
            return self.parts[key]
        base = self.base
        raw = {section: copy.deepcopy(base[section])} if section in base else {}
        for dotted, _, value in touched:
            set_dotted(raw, dotted, value)
        built = convert(section, self.hints[section], raw[section])
        if self.hints[section] is not int:  # a seed is its own value: a cache would only grow
            self.parts[key] = built
        return built

    def trial(self, js: tuple[int, ...], data: dict | None = None, again: bool = False) -> Trial:
        """The trial at indices ``js``; ``again``: one built and checked before, made without
        running ``Trial.__init__`` again (its fields set as it set them: a third of the cost
        of planning a million trials went to it)."""
        k = self.seed_factor
        if k is None:
            values = self.values(js)
        else:
            seed = self.seeds[js[k]]
            if type(seed) is not int:
                seed = convert("seed", int, seed)
            values = {"seed": seed, **self.values(js[:k] + js[k + 1 :])}
        if data and (replaced := data.get(id(values["data"]))) is not None:
            values = {**values, "data": replaced}
        if not again:
            return Trial(**values)
        trial = object.__new__(Trial)
        for name, default in FIELDS:  # in __init__'s order: the instances share their keys
            object.__setattr__(trial, name, values.get(name, default))
        return trial

    def values(self, rest: tuple[int, ...]) -> dict:
        """The parts set by the factors other than the seed axis, at their indices ``rest``."""
        values = self.memo.get(rest)
        if values is not None:
            return values
        touched: dict[str, tuple] = {}
        for k, j in zip(self.others, rest, strict=True):
            for section, entries in self.points[k][j]:
                touched[section] = touched.get(section, ()) + entries
        values = dict(self.constant)
        for section in self.swept:  # in the fields' order: the first problem is the first
            values[section] = self.part(section, touched[section])
        # the default Trial would give an absent fit (closed form) or train (networks), as one
        # object shared by the trials
        section = values["model"].SECTION
        if values.get(section) is None:
            values[section] = self.parts.setdefault((section, "default"), SECTIONS[section][0]())
        if len(self.memo) >= CACHED_POINTS:
            self.memo.clear()
        self.memo[rest] = values
        return values

    def expand(self) -> tuple[list[str], list[int] | None, list[int]]:
        """Every point built and checked once, a point at a time: the trial ids in order, the
        kept points (None when no point repeated an earlier trial) and the positions of the
        first trial of each distinct set of parts."""
        ids: list[str] = []
        seen: set[str] = set()
        kept: list[int] | None = None
        reps: list[int] = []
        checked: set[tuple[int, ...]] = set()
        for point, js in enumerate(itertools.product(*map(range, self.lengths))):
            try:
                trial = self.trial(js, again=True)
                parts = (id(trial.data), id(trial.model), id(trial.fit), id(trial.train))
                if parts in checked:  # the parts passed; only the seed is new
                    if self.seed_bound is not None:
                        self.seed_bound.check("seed", trial.seed)
                else:  # the first trial of its parts: made and checked in full
                    trial = self.trial(js)
                    validate(trial)
            except SpecError as e:
                combo = self.combo(js)
                shown = ", ".join(f"{d}={v!r}" for e in combo for _, vs in e for d, _, v in vs)
                raise SpecError(e.path, f"{e.message} (grid point {shown})") from None
            tid = trial_id(trial, remember=False)
            if tid in seen:
                if kept is None:
                    kept = list(range(point))
                continue
            seen.add(tid)
            if parts not in checked:
                checked.add(parts)
                reps.append(len(ids))
            ids.append(tid)
            if kept is not None:
                kept.append(point)
        return ids, kept, reps


class _Points:
    """A factor's points, each as ((section, ((path, type, value), ...)), ...): its values
    grouped by the section they set, made as asked for (a long axis is never held whole)."""

    def __init__(self, factor: Factor):
        self.names, self.columns = factor.names, factor.columns()
        self.layout = tuple(
            (section, tuple(j for j, d in enumerate(self.names) if d.split(".")[0] == section))
            for section in dict.fromkeys(d.split(".")[0] for d in self.names)
        )

        self.cache = list(self._made()) if len(self.columns[0]) <= CACHED_POINTS else None

    def __len__(self) -> int:
        return len(self.columns[0])

    def __getitem__(self, i: int) -> tuple:
        if self.cache is not None:
            return self.cache[i]
        names, columns = self.names, self.columns
        return tuple(
            (section, tuple((names[j], type(v := columns[j][i]), v) for j in js))
            for section, js in self.layout
        )

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.cache) if self.cache is not None else self._made()

    def _made(self) -> Iterator[tuple]:
        names = self.names
        for row in zip(*self.columns, strict=True):
            yield tuple(
                (section, tuple((names[j], type(row[j]), row[j]) for j in columns))
                for section, columns in self.layout
            )
