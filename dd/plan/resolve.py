"""The resolve stage: each trial's kinds check and describe themselves, before anything runs.

A parsed spec (``dd.plan.sweep``) holds configs only: values checked field by field, no file read,
no user code imported. ``resolve`` is called where a spec is loaded for running (``dd sweep``,
``dd.api.sweep`` and ``dd.api.plan``): each distinct data config's kind describes it
(``DataFacts``: for a user's arrays, the file read or the loader run, and checked), a copy
of the config holding the facts replaces it in the trials (the parsed configs are frozen and
stay as they were), and each trial is checked against them: the data kind's own check
(n_train against the pool), the model's compatibility with the data (``Model.check_data``)
and the model kind's check (a user's Flax module imported and one pack step traced, once
per process and program). Commands that only read results (``dd status``, ``dd curves``,
``dd report``, ``dd query``) never call it, so they run without the user's code.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import Any

from dd.datasets import registry as datasets
from dd.models import measures, registry as models
from dd.plan.sweep import Spec
from dd.spec.config import Trial
from dd.spec.errors import SpecError
from dd.spec.expand import GridTrials, distinct_parts
from dd.spec.fields import Options


def resolve(spec: Spec) -> Spec:
    """``spec`` with every trial resolved (a SpecError or DataError names the first problem,
    and the grid point it was found at)."""
    if spec.resources.execution == "block":
        for trial in distinct_parts(spec.trials):
            kind = models.kind_of(trial)
            if getattr(kind, "block", None) is None:
                raise SpecError(
                    "resources.execution",
                    f"block packs need a family that has them "
                    f"({', '.join(k.name for k in models.load() if getattr(k, 'block', None))}); "
                    f"{kind.name} has none",
                )
    if not isinstance(spec.trials, GridTrials):
        return dataclasses.replace(spec, trials=tuple(resolve_trials(spec.trials, spec.axes)))
    # a grid's checks read the parts alone: its first trial of each set of parts is resolved,
    # and its trials are built again with the resolved data (the originals kept alive by it)
    firsts = spec.trials.representatives()
    resolved = resolve_trials(firsts, spec.axes)
    pairs = zip(firsts, resolved, strict=True)
    data = {id(a.data): b.data for a, b in pairs if a.data is not b.data}
    return dataclasses.replace(spec, trials=spec.trials.with_data(data))


def resolve_trials(trials: Iterable[Trial], axes: Sequence[str] = ()) -> list[Trial]:
    """The trials, each with its data's facts (a new trial where the data did not know them:
    the given configs are frozen and stay as they were), every kind's check passed. Trials
    share their parts (``dd.spec.expand``), so each distinct part is described
    once, and the resolved trials share their resolved data."""
    resolved: dict[int, Any] = {}  # id(data) -> the data with its facts (data kept alive)
    described: dict[Any, Any] = {}  # data -> facts, for equal data configs
    checked: set[tuple[int, int, int]] = set()
    out = []
    for trial in trials:
        try:
            data = trial.data
            if data.facts is None:
                if id(data) not in resolved:
                    if data not in described:
                        kind = datasets.kind_of(data)
                        facts = kind.describe(data)
                        kind.check(data, facts, "data")
                        described[data] = facts
                    resolved[id(data)] = (data, data.with_facts(described[data]))
                trial = dataclasses.replace(trial, data=resolved[id(data)][1])
            parts = (id(trial.data), id(trial.model), id(trial.train))
            if parts not in checked:
                trial.check_facts("")
                models.kind_of(trial).check(trial, "")
                measures.check(trial)
                checked.add(parts)
        except SpecError as e:
            raise SpecError(e.path, e.message + _grid_point(trial, axes)) from None
        out.append(trial)
    return out


def _grid_point(trial: Trial, axes: Sequence[str]) -> str:
    """`` (grid point a=1, b=2)``: the trial's values of the swept axes, as parse errors say."""
    if not axes:
        return ""
    return " (grid point " + ", ".join(f"{a}={_value(trial, a)!r}" for a in axes) + ")"


def _value(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = json.loads(obj)[part] if isinstance(obj, Options) else getattr(obj, part)
    return obj
