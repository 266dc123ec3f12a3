"""What a sweep run did: ``SweepResult``, the lines ``dd sweep`` prints and its short summary,
built by ``result_of`` once the run's packs are done (its curves written first)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from dd.analysis.status import counts_line, trial_counts
from dd.plan.states import plan_of
from dd.plan.sweep import Spec
from dd.store.sweep import SweepStore


@dataclasses.dataclass(frozen=True, repr=False)
class SweepResult:
    """What a sweep run did, and the lines ``dd sweep`` prints for it.

    ``messages`` go to stderr on the command line (failures, the run time), ``lines`` to
    stdout (thresholds, peaks, where the results and figures are); ``str()`` and ``repr()``
    give a short summary: the messages, the trials planned / done / failed, the verdicts
    and where the results are. ``exit_code`` is the command's: 1 when a pack failed, else 0.
    """

    name: str
    results_dir: str
    report: Any  # dd.run.schedule.SweepReport
    messages: tuple[str, ...]
    lines: tuple[str, ...]
    figures: tuple[str, ...]
    counts: dict[str, int] = dataclasses.field(default_factory=dict)  # planned, done, failed
    verdicts: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return 1 if self.report.failed_packs else 0

    def __str__(self) -> str:
        return "\n".join(
            [*self.messages, counts_line(self.name, self.counts), *self.verdicts]
            + [
                f"results: {self.results_dir} ({len(self.figures)} figures; "
                "result.lines has the thresholds, peaks and figure paths)"
            ]
        )

    __repr__ = __str__


def result_of(
    loaded: Spec, store: SweepStore, report, *, curves: bool, closing: Sequence[str] = ()
) -> SweepResult:
    """The result of a run of ``loaded`` into ``store`` (``report``: ``run_sweep``'s), its
    curves and figures written unless ``curves`` is false; ``closing``: the refinement's
    closing lines (``dd.analysis.refine_rounds``), said after the curves' own."""
    messages = []
    if report.failed_packs:
        messages.append(
            f"{len(report.failed_packs)} packs failed; 'dd status {loaded.name}' "
            "lists them; run the same command again to retry"
            + (f"; Ray's own messages: {report.ray_log}" if report.ray_log else "")
        )
    if report.trials_run:
        messages.append(
            f"{loaded.name}: ran {report.trials_run} trials in {report.wall_time_s:.1f}s"
        )
    lines, figures, found = list(closing), [], []
    if curves and report.failed_packs and not report.trials_run and not report.already_stored:
        curves = False  # a pack's partial rows are no result: there is nothing to draw
        messages.append(
            f"no curves: every pack failed ({len(report.failed_packs)} of {report.packs}) and no "
            f"trial of {loaded.name} is stored; rows of a failed pack are not results"
        )
    if curves:
        from dd.analysis.aggregate import describe, verdicts, write_curves
        from dd.spec.errors import StoreError

        try:
            aggregate = write_curves(store, loaded)
        except StoreError as e:
            if not report.failed_packs:
                raise
            aggregate = None  # packs failed too (a full disk, say): both are said, in one line each
            messages.append(f"curves not written: {e}")
        if aggregate is not None:
            figures = [str(path) for path in aggregate.figures]
            found = verdicts(aggregate)
            lines = (
                describe(aggregate)
                + list(closing)
                + [f"results: {store.packs_dir}"]
                + [f"figure: {path}" for path in figures]
            )
    return SweepResult(
        name=loaded.name,
        results_dir=str(store.dir),
        report=report,
        messages=tuple(messages),
        lines=tuple(lines),
        figures=tuple(figures),
        counts=trial_counts(store, plan_of(loaded)),
        verdicts=tuple(found),
    )
