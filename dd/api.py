"""The Python API for notebooks: run a sweep, plan one, and read its rows, trials and curves
as Arrow tables; no shelling out.

    >>> from dd import api
    >>> run = api.sweep("sweeps/mnist1d_mlp.yaml", overrides=["name=short", "train.epochs=20"])
    >>> print(run)                                     # planned / done / failed, the verdicts
    >>> api.plan({"name": "s", "data": ..., "model": ..., "grid": ...}).packs
    >>> rows = api.load("short")                       # one row per (trial, evaluation)
    >>> api.query("SELECT model_width, avg(test_error) FROM trials GROUP BY 1", sweep="short")
    >>> api.curves("short")["model_wise"].wide()       # a row per width, a column per metric
    >>> api.load("short").to_pandas()                  # a DataFrame (pandas is a dependency)
    >>> api.release_workers()                          # the warm workers go (see sweep)

``results`` is the results root (default: $DD_RESULTS, else ./results), as for the CLI. Each
call reads dd's settings (``dd.spec.settings``) once, its arguments over the environment.
"""

from __future__ import annotations

import collections
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dd.analysis.query import query_arrow
from dd.handle import SweepHandle
from dd.plan.states import load_plan, load_stored_spec, planned_table, stored_rows
from dd.plan.sweep import Spec, apply_overrides, parse_spec, spec_mapping
from dd.result import SweepResult, result_of
from dd.spec.settings import Settings
from dd.store.sweep import SweepStore

if TYPE_CHECKING:
    from dd.analysis.curves.base import (
        CurveSet,  # the curve code loads only when curves are asked for
    )

SpecSource = str | Path | dict


def load_spec(
    spec: SpecSource, overrides: Sequence[str] = (), *, settings: Settings | None = None
) -> Spec:
    """A validated spec from a file path, a YAML text or a mapping, with ``overrides``
    (``PATH=VALUE`` strings, as the CLI's ``--set``) applied; its grid may have at most
    ``settings.max_trials`` points (default: the settings read now)."""
    if isinstance(spec, Spec) and not overrides:
        return spec
    limit = (settings or Settings.load()).max_trials
    mapping = spec.mapping if isinstance(spec, Spec) else spec_mapping(spec)
    return check_curves(parse_spec(apply_overrides(mapping, overrides), max_trials=limit))


def with_added(spec: Spec, settings: Settings) -> Spec:
    """``spec`` with the axis values and seeds its ``refine:`` rounds added and stored
    (``dd.plan.refine``): what ``dd sweep`` runs, ``--dry-run`` and ``dd status`` show."""
    if not spec.refine:
        return spec
    from dd.plan.refine import extended, read_state

    state = read_state(SweepStore(settings.results, spec.name), spec.mapping)
    if not state["added"] and not state["seeds"]:
        return spec
    limit = settings.max_trials
    mapping = extended(spec.mapping, state["added"], state["seeds"])
    return check_curves(parse_spec(mapping, max_trials=limit))


def check_curves(spec: Spec) -> Spec:
    """``spec``, once each registered curve kind has checked the ``curves:`` fields it reads
    (a typo would otherwise read as a scientific result, "threshold not reached")."""
    from dd.analysis.curves.registry import check_curves as check_kinds

    check_kinds(spec.curves, list(spec.axes), spec.trials[0])
    return spec


def sweep(
    spec: SpecSource | Spec,
    results: str | Path | None = None,
    address: str | None = None,
    *,
    overrides: Sequence[str] = (),
    quiet: bool = False,
    cpus: int | None = None,
    compile_cache: str | None = None,
    curves: bool = True,
    debug: bool = False,
    connect_timeout: float | None = None,
    wait: bool = True,
) -> SweepResult | SweepHandle:
    """Run every trial of ``spec`` not yet stored, then write its curves and figures.

    ``spec``: a file path, a YAML text, a mapping, or a loaded ``Spec``; ``overrides`` as
    ``--set``. ``address``: a Ray cluster (default $RAY_ADDRESS, else a local instance, or
    the Ray this process already initialised: ``ray.init(runtime_env=...)`` first to ship
    your own modules to a cluster's workers). Progress goes to stderr as plain lines where
    stderr is not a terminal (a notebook), as a bar where it is; ``quiet`` silences it.
    ``debug`` and ``connect_timeout``: as the CLI's ``--debug`` and ``--connect-timeout``.
    Raises ``dd.spec.errors.DDError`` on bad input, before anything is written. With ``wait``
    false the sweep runs in a thread of this process and a ``dd.handle.SweepHandle`` comes
    back at once: its ``status()``, ``rows()`` (finished and partial), ``curves()``,
    ``wait()`` (this function's result) and ``cancel()`` work while it runs.
    The pack workers stay warm afterwards (``dd.run.pool``): a next sweep of the same resources
    in this process reuses them and their compiled programs; ``release_workers`` stops them.
    Without an address, the warm instance of ``dd up`` is joined while it is up
    (``dd.run.warm``): its workers outlive this process too.
    """
    from dd.plan.resolve import resolve

    settings = _settings(
        results,
        address=address,
        cpus=cpus,
        compile_cache=compile_cache,
        connect_timeout_s=connect_timeout,
    )
    given = load_spec(spec, overrides, settings=settings)
    early = None
    if not SweepStore(settings.results, given.name).result_files():
        early = _start_early(given, settings, quiet=quiet, debug=debug)  # a fresh sweep: Ray
    loaded = resolve(given)
    options = {"settings": settings, "quiet": quiet, "debug": debug, "curves": curves}
    options["early"] = early
    if wait:
        return _run(loaded, **options)
    return SweepHandle(
        loaded.name,
        settings.results,
        lambda stop: _run(loaded, stop=stop, **options),
        spec=loaded,
    )


def _start_early(spec: Spec, settings: Settings, *, quiet: bool, debug: bool):
    """Start Ray, then one pack worker (``dd.run.pool``), in a thread while the spec resolves and
    the sweep is planned (its imports and data loading overlap Ray's start-up); the run
    takes both up (the returned ``dd.run.cluster.EarlyStart``, ``dd.run.pool.WorkerPool.take``).
    None where the run will refuse its settings."""
    from dd.run.cluster import ray_options, start_ray_soon

    if settings.cpus is not None and (settings.address or settings.cpus < spec.resources.cpus):
        return None  # the run refuses these (dd.run.execute): Ray is not started for it

    def first_worker() -> None:
        import ray

        from dd.run.cluster import check_fits
        from dd.run.pool import POOL, WorkerKind
        from dd.spec.errors import SpecError

        try:
            check_fits(spec.resources, ray.nodes())
        except SpecError:  # said by the run, before anything is written
            return
        POOL.prestart(WorkerKind.of(spec.resources, settings))

    return start_ray_soon(**ray_options(settings, quiet=quiet, debug=debug), then=first_worker)


def _run(
    loaded: Spec,
    *,
    settings,
    quiet: bool,
    debug: bool,
    curves: bool,
    stop=None,
    early=None,
) -> SweepResult:
    """``sweep``'s run of a loaded, resolved spec: the trials, then the curves (``early``: the
    Ray start ``_start_early`` began, taken up by the first run)."""
    from dd.run.execute import run_sweep

    def run(spec: Spec):
        return run_sweep(
            spec,
            settings.results,
            settings=settings,
            quiet=quiet,
            debug=debug,
            stop=stop,
            early=early,
        )

    store = SweepStore(settings.results, loaded.name)
    closing: list[str] = []
    if loaded.refine:  # rounds that locate the transitions (dd.analysis.refine_rounds)
        from dd.analysis.refine_rounds import refine_sweep

        say = (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr))
        loaded, report, closing = refine_sweep(
            loaded, store, lambda m: _prepared(m, settings), run, say
        )
    else:
        report = run(loaded)
    return result_of(loaded, store, report, curves=curves, closing=closing)


@dataclasses.dataclass(frozen=True)
class Plan:
    """A sweep's trials and packs, nothing run. ``trials``: one row per planned trial (its
    id, whether it is stored, its config columns); ``packs``: one row per pack to run, with
    the plan it would train by on this machine's device (``dd.engine.train.execution_plan``)."""

    spec: Spec
    trials: pa.Table
    packs: pa.Table

    def __str__(self) -> str:
        todo = sum(self.packs.column("n_trials").to_pylist())
        stored = sum(self.trials.column("stored").to_pylist())
        plans = collections.Counter(
            zip(
                self.packs.column("model").to_pylist(),
                self.packs.column("plan").to_pylist(),
                strict=True,
            )
        )
        return "\n".join(
            [
                f"{self.spec.name}: {self.trials.num_rows} trials, {stored} already stored; "
                f"{todo} to run in {self.packs.num_rows} pack"
                f"{'' if self.packs.num_rows == 1 else 's'}"
            ]
            + [
                f"  {model}: {n} pack{'' if n == 1 else 's'} {plan}"
                for (model, plan), n in sorted(plans.items())
            ]
        )


def plan(
    spec: SpecSource | Spec, results: str | Path | None = None, *, overrides: Sequence[str] = ()
) -> Plan:
    """The trials of ``spec`` and the packs its missing trials would run in (the trials
    already stored under ``results`` are left out of the packs; nothing is written)."""
    from dd.plan.resolve import resolve
    from dd.plan.runners import runner_of
    from dd.run.schedule import plan as plan_packs

    settings = _settings(results)
    loaded = resolve(with_added(load_spec(spec, overrides, settings=settings), settings))
    store = SweepStore(settings.results, loaded.name)
    packs, _ = plan_packs(loaded, store)
    stored = store.stored_trial_ids()
    trials = planned_table(loaded.trials, stored)
    rows = [
        {
            "pack_id": p.id,
            "n_trials": len(p.trials),
            "n_replicas": p.n_replicas,
            "n_rows": p.n_rows,
            "model": p.trials[0].model.name,
            "family": runner_of(p.trials[0]).family(p.trials[0]),
            "plan": _plan_name(p, loaded.resources.execution),
            "trial_ids": list(p.trial_ids),
        }
        for p in packs
    ]
    schema = pa.schema(
        [
            ("pack_id", pa.string()),
            ("n_trials", pa.int64()),
            ("n_replicas", pa.int64()),
            ("n_rows", pa.int64()),
            ("model", pa.string()),
            ("family", pa.string()),
            ("plan", pa.string()),
            ("trial_ids", pa.list_(pa.string())),
        ]
    )
    return Plan(spec=loaded, trials=trials, packs=pa.Table.from_pylist(rows, schema=schema))


def _plan_name(pack, execution: str) -> str:
    """How ``pack`` would train here: its layout and loop (``dd.engine.train.Plan``)."""
    from dd.plan.runners import runner_of

    return runner_of(pack.trials[0]).layout(pack.key, pack.padded_trials(), execution)


def release_workers() -> None:
    """Stop the warm pack workers that this process's sweeps left on Ray (``dd.run.pool``; on
    ``dd up``'s warm instance, every idle one there): the next sweep starts and compiles
    afresh, and their CPUs and GPUs free up for others."""
    from dd.run.pool import POOL

    POOL.release()


def _prepared(mapping: dict, settings: Settings) -> Spec:
    """A spec mapping loaded, checked and resolved, as ``sweep`` runs it."""
    from dd.plan.resolve import resolve

    return resolve(check_curves(parse_spec(mapping, max_trials=settings.max_trials)))


def _settings(results: str | Path | None, **flags: Any) -> Settings:
    """The settings read now; the cost tables they name are the ones this process plans by."""
    from dd.engine.costs import use_tables

    settings = Settings.load(results=None if results is None else str(results), **flags)
    use_tables(settings.cost_tables)
    return settings


def load(sweep: str, results: str | Path | None = None, *, current: bool = True) -> pa.Table:
    """The sweep's stored rows: of its current spec's ok trials (``current``, as the curves
    see them), or every stored row, other spec versions and diverged trials included."""
    settings = _settings(results)
    store = SweepStore(settings.results, sweep)
    table = stored_rows(store)
    if not current:
        return table
    from dd.analysis.aggregate import current_rows

    return current_rows(table, load_plan(store, max_trials=settings.max_trials).trial_ids)[0]


def query(sql: str, sweep: str | None = None, results: str | Path | None = None) -> pa.Table:
    """DuckDB ``sql`` over the views ``results`` and ``trials`` (see ``dd.analysis.query``) of one
    sweep, or of every sweep under the results root."""
    return query_arrow(sql, _settings(results).results, sweep)


def curves(
    sweep: str, results: str | Path | None = None, *, wide: bool = False
) -> dict[str, CurveSet] | dict[str, pa.Table]:
    """The sweep's curve sets by kind (model_wise, epoch_wise, grokking, ...), computed from
    its stored rows for its current spec (a running sweep's rows so far too: provisional);
    nothing is written. ``wide``: each kind's points as one row per series and x, a column
    per metric with its interval (``CurveSet.wide``), instead of the curve sets."""
    settings = _settings(results)
    store = SweepStore(settings.results, sweep)
    table = stored_rows(store, live=True)  # a running sweep's rows so far too
    from dd.analysis.aggregate import sweep_curves
    from dd.plan.refine import stored_additions, stored_seed_sites

    spec = load_stored_spec(store, max_trials=settings.max_trials)
    sets, _ = sweep_curves(table, spec, stored_additions(store), stored_seed_sites(store))
    return {c.kind: c.wide() if wide else c for c in sets}
