"""``dd report``: one self-contained HTML page per sweep, for reading the morning after.

The page carries everything inline (figures as base64 PNG, interactive curves with plotly.js
inlined, styles in the head; nothing from the network): the sweep's finding first, the spec,
trial counts and run times, the located thresholds and peaks, every figure the aggregator draws
(curves, heatmaps, grokking times and phases, effective parameters), each curve kind's own
tables (the grokking times), and the failed and diverged trials.
"""

from __future__ import annotations

import base64
import html
import time

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from dd.analysis.aggregate import Aggregate, describe, verdicts, write_curves
from dd.analysis.curves.base import CurveKind, Section
from dd.analysis.curves.registry import load as load_kinds
from dd.analysis.interactive import curve_figure, plotly_script
from dd.analysis.report_live import _driver_runs, _live, _no_rows, _no_rows_note
from dd.plan.states import load_stored_spec, plan_of, trial_states
from dd.plan.sweep import Spec
from dd.spec.provenance import DD_VERSION
from dd.store.paths import StorePath, as_store_path, atomic_write_bytes
from dd.store.schema import META, flatten_config
from dd.store.sweep import SweepStore

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1250px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: .85em; }
.landmark { font-family: ui-monospace, monospace; }
"""

MAX_TABLE_ROWS = 200  # longer tables are cut, with a note; the Parquet files hold them all


def write_report(
    store: SweepStore,
    output: str | None = None,
    spec: Spec | None = None,
    reload_s: float | None = None,
) -> tuple[StorePath, bool]:
    """Aggregate the sweep (curves and figures brought up to date), then write the page to
    ``output`` (default ``<sweep>/report.html``) atomically; returns where it went and
    whether packs still run. ``spec``: the plan (default: the stored spec). ``reload_s``:
    while packs run, the page reloads itself that often (``dd report --watch``)."""
    spec = spec or load_stored_spec(store)
    rows = store.read_results(partial=True)
    if rows is None:  # no pack finished, none has rows so far: running, or every one failed
        rows, aggregate = META.empty_table(), _no_rows(store, spec)
    else:
        aggregate = write_curves(store, spec, rows)
    page = render(store, spec, aggregate, rows, reload_s if aggregate.running else None)
    path = as_store_path(output) if output else store.report_path
    atomic_write_bytes(path, page.encode())
    return path, aggregate.running is not None


def render(
    store: SweepStore,
    spec: Spec,
    aggregate: Aggregate,
    rows: pa.Table,
    reload_s: float | None = None,
) -> str:
    """The page's HTML: the sweep's finding first (``lead_kind``), then while packs run the
    live state with its ETA, the other verdicts, the counts, landmarks, figures and tables."""
    lead = lead_kind(aggregate)
    shown = _lead_figures(aggregate, lead)
    body = [
        f"<h1>dd report: {_e(spec.name)}</h1>",
        f"<p>Results: <code>{_e(store.dir)}</code>. Written "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} by dd {DD_VERSION}.</p>",
        *_no_rows_note(store, aggregate),
        *_finding(aggregate, lead, shown),
        *(_live(store, aggregate.running) if aggregate.running else []),
        *_verdict(aggregate, lead, shown),
        "<h2>Trials</h2>",
        _counts(store, spec, rows),
        "<h2>Thresholds and peaks</h2>",
        _landmarks(aggregate),
        *_interactive(aggregate, skip=lead.lead.curves if lead else None),
        "<h2>Figures</h2>",
        *(_figure(path) for path in aggregate.figures if path not in shown),
    ]
    for section in _sections(aggregate, landmark=False, skip=lead):
        body += [f"<h2>{_e(section.heading)}</h2>", _table(section.table)]
    body += [
        "<h2>Failed and diverged trials</h2>",
        _failures(store, rows, spec),
        "<h2>Where the time went</h2>",
        _time_spent(store),
        "<h2>Spec</h2>",
        f"<pre>{_e(yaml.safe_dump(spec.mapping, sort_keys=False))}</pre>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        + (f'<meta http-equiv="refresh" content="{reload_s:g}">' if reload_s else "")
        + f"<title>dd report: {_e(spec.name)}</title><style>{STYLE}</style>"
        + (plotly_script() if aggregate.curves else "")
        + "</head>\n"
        + "<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


PROFILE_PHASES = ("start", "data", "compile", "train", "evaluate", "write")  # dd.engine.profile


def lead_kind(aggregate: Aggregate) -> CurveKind | None:
    """The kind whose finding opens the page (``dd.analysis.curves.lead``): of those with a
    result and a lead, the highest rank (the first in registry order on a tie)."""
    leads = [k for k in load_kinds() if k.lead is not None and k.name in aggregate.results]
    return max(leads, key=lambda k: k.lead.rank, default=None)


def _lead_figures(aggregate: Aggregate, lead: CurveKind | None) -> list[StorePath]:
    """The static figures shown at the top (the figures section then leaves them out): the
    lead's; without a lead, the one-page view of grokking and double descent where the sweep
    has it (``dd.analysis.curves.unification``), else the first, under the verdicts."""
    if lead is not None:
        return [p for name in lead.lead.figures for p in aggregate.figures if p.name == name]
    if not verdicts(aggregate) or not aggregate.figures:
        return []
    unified = [p for p in aggregate.figures if p.name == "unification.png"]
    return [(unified or aggregate.figures)[0]]


def _finding(aggregate: Aggregate, lead: CurveKind | None, shown: list[StorePath]) -> list[str]:
    """The lead kind's verdict and times, its curves (interactive), figures and tables."""
    if lead is None:
        return []
    result = aggregate.results[lead.name]
    found = "".join(f"<li>{_e(line)}</li>" for line in lead.lead.lines(result))
    provisional = " (provisional: packs still run)" if aggregate.running else ""
    out = [
        f'<section id="finding"><h2>Finding{provisional}: {_e(lead.lead.title)}</h2>',
        f'<ul class="finding">{found}</ul>',
    ]
    if lead.lead.sections:
        out += [
            f"<h3>{_e(s.heading)}</h3>{_table(s.table)}"
            for s in lead.sections(result)
            if not s.landmark
        ]
    drawn = aggregate.results.get(lead.lead.curves) if lead.lead.curves else None
    if drawn is not None and len(drawn.points):
        out.append(curve_figure(drawn, f"curves-{drawn.kind}"))
    return [*out, *(_figure(p) for p in shown), "</section>"]


def _interactive(aggregate: Aggregate, skip: str | None) -> list[str]:
    """Every curve set but the lead's, interactive (``dd.analysis.interactive``)."""
    drawn = [c for c in aggregate.curves if c.kind != skip and len(c.points)]
    if not drawn:
        return []
    return [
        "<h2>Curves (hover a point for its seeds; click a legend entry to hide it)</h2>",
        *(curve_figure(c, f"curves-{c.kind}") for c in drawn),
    ]


def _verdict(aggregate: Aggregate, lead: CurveKind | None, shown: list[StorePath]) -> list[str]:
    """What else the sweep found (one line per curve kind; the lead's lines are above), with
    the main figure when no kind leads."""
    said = set(lead.lead.lines(aggregate.results[lead.name])) if lead else set()
    lines = [line for line in verdicts(aggregate) if line not in said]
    if not lines:
        return []
    found = "".join(f"<li>{_e(line)}</li>" for line in lines)
    figures = [] if lead else [_figure(p) for p in shown]
    provisional = " (provisional: packs still run)" if aggregate.running else ""
    heading = f"<h2>{'Verdicts' if lead else 'Verdict'}{provisional}</h2>"
    return [heading, f"<ul>{found}</ul>", *figures]


def _time_spent(store: SweepStore) -> str:
    """Each stored pack's profile (``dd.engine.profile``): seconds per phase, programs, MB moved."""
    from dd.analysis.status import stored_profiles

    records, left = stored_profiles(store)
    note = "".join(f"<p>{_e(line)}.</p>" for line in left)
    if not records:
        return "<p>No pack profiles stored (each pack writes one when it ends).</p>" + note
    table = pa.Table.from_pylist(
        [
            {
                "pack": r["pack_id"],
                "trials": r.get("trials"),
                **{f"{p} s": round(r["phases"].get(p, 0.0), 2) for p in PROFILE_PHASES},
                "programs": r["programs_compiled"],
                "MB to device": round(r["bytes_to_device"] / 1e6, 2),
                "MB to host": round(r["bytes_to_host"] / 1e6, 2),
            }
            for r in records
        ]
    )
    totals = {p: sum(r["phases"].get(p, 0.0) for r in records) for p in PROFILE_PHASES}
    summary = ", ".join(f"{p} {s:.1f} s" for p, s in totals.items())
    return f"<p>All {len(records)} packs: {_e(summary)}.</p>" + _table(table) + note


def _counts(store: SweepStore, spec: Spec, rows: pa.Table) -> str:
    states = trial_states(store, plan_of(spec), store.stored_trial_ids())
    diverged = set(_diverged(rows)["trial_id"].to_pylist())
    packs = rows.group_by("pack_id").aggregate([("wall_time_s", "max")])
    runs, seconds = _driver_runs(store)
    facts = [
        ("trials planned", len(states["planned"])),
        ("done", len(states["done"])),
        ("missing", len(states["missing"])),
        ("failed", len(states["failed"])),
        ("stale (rows of a pack that stopped; rerun to finish)", len(states["stale"])),
        ("diverged", len(diverged & states["planned"])),
        ("stored from earlier specs", len(states["earlier"])),
        ("evaluation rows", len(rows)),
        ("packs", len(packs)),
        ("pack compute time (s)", f"{pc.sum(packs['wall_time_s_max']).as_py() or 0:.1f}"),
        ("driver runs", runs),
        ("driver wall time (s)", f"{seconds:.1f}"),
    ]
    return (
        '<table class="counts">'
        + "".join(
            f'<tr><th class="text">{_e(k)}</th><td data-fact="{_e(k)}">{_e(v)}</td></tr>'
            for k, v in facts
        )
        + "</table>"
    )


def _landmarks(aggregate: Aggregate) -> str:
    lines = "".join(f'<li class="landmark">{_e(line)}</li>' for line in describe(aggregate))
    tables = "".join(
        f"<h3>{_e(section.heading)}</h3>{_table(section.table)}"
        for section in _sections(aggregate, landmark=True)
    )
    return f"<ul>{lines}</ul>{tables}"


def _sections(aggregate: Aggregate, landmark: bool, skip: CurveKind | None = None) -> list[Section]:
    """The registered kinds' report tables, in registry order: those under "Thresholds and
    peaks" (``landmark``) or those with a heading of their own (less the lead's, ``skip``,
    where they moved up with it)."""
    return [
        section
        for kind in load_kinds()
        if kind.name in aggregate.results
        and not (skip is kind and skip.lead.sections and not landmark)
        for section in kind.sections(aggregate.results[kind.name])
        if section.landmark == landmark
    ]


def _figure(path: StorePath) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img alt="{_e(path.name)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(path.name)}</figcaption></figure>"
    )


def _diverged(rows: pa.Table, spec: Spec | None = None) -> pa.Table:
    """One row per diverged trial: its id, first diverged step and, given the ``spec``, its
    config (every field, so that a setting to blame shows even when it is not swept)."""
    diverged = rows.filter(pc.equal(rows["status"], "diverged"))
    step = ["diverged_step"] if "diverged_step" in diverged.column_names else []
    config = [c for c in flatten_config(spec.trials[0]) if c in rows.column_names] if spec else []
    first: dict[str, dict] = {}
    for row in diverged.select(["trial_id", *step, *config]).to_pylist():
        kept = first.get(row["trial_id"])
        if kept is None or (step and (row["diverged_step"] or 0) < (kept["diverged_step"] or 0)):
            first[row["trial_id"]] = row
    if not first:
        return diverged.select(["trial_id", *step])
    return pa.Table.from_pylist(list(first.values()))


def _failures(store: SweepStore, rows: pa.Table, spec: Spec | None = None) -> str:
    """The failed packs with their reasons (those of an earlier spec version said so: not a
    current failure) and the diverged trials."""
    from dd.analysis.status import split_failures

    planned = set(plan_of(spec).trial_ids) if spec else set()
    _, earlier = split_failures(store.failures(), planned) if spec else ([], [])
    failures = store.failures()
    diverged = _diverged(rows, spec)
    if not failures and not len(diverged):
        return "<p>None.</p>"
    out = []
    if failures:
        out.append(
            _table(
                pa.Table.from_pylist(
                    [
                        {
                            "pack_id": f["pack_id"],
                            "trials": len(f["trial_ids"]),
                            "time": f["time"],
                            "reason": f["reason"],
                            **(
                                {"of": "earlier spec" if f in earlier else "current"}
                                if spec
                                else {}
                            ),
                        }
                        for f in failures
                    ]
                )
            )
        )
    if len(diverged):
        out.append(_table(diverged))
    return "".join(out)


def _table(table: pa.Table) -> str:
    shown = table.slice(0, MAX_TABLE_ROWS)
    head = "".join(f"<th>{_e(c)}</th>" for c in shown.column_names)
    body = "".join(
        "<tr>" + "".join(_cell(v) for v in row.values()) + "</tr>" for row in shown.to_pylist()
    )
    note = (
        f"<p>First {MAX_TABLE_ROWS} of {len(table)} rows.</p>"
        if len(table) > MAX_TABLE_ROWS
        else ""
    )
    return f"<table><tr>{head}</tr>{body}</table>{note}"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"<td>{value:.4g}</td>"
    if isinstance(value, (int, type(None))):
        return f"<td>{'' if value is None else value}</td>"
    return f'<td class="text">{_e(value)}</td>'


def _e(value) -> str:
    return html.escape(str(value))
