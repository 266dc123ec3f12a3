"""The ``dd`` command line.

Exit codes: 0 success; 1 a run failed (a pack failed, results unreadable or unwritable);
2 bad input (spec, arguments, names, data files, SQL, resources, an unreachable address);
130 interrupted (Ctrl-C), 143 terminated (SIGTERM); 141 quietly when stdout's reader went
away. Errors are one line; --debug shows the traceback and Ray's own messages (without it
they go to the run's log, dd.run.cluster.route_ray_output).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from dd.spec.errors import DDError
from dd.spec.provenance import DD_VERSION


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every bad input
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _given(sweep: str, results: str | None):
    """(settings, the spec file's loaded spec or None, the sweep's name) of a sweep given by
    name or by spec file."""
    from dd.spec.settings import Settings

    settings = Settings.load(results=results)
    if sweep.endswith((".yaml", ".yml")) and Path(sweep).is_file():
        from dd.api import load_spec, with_added

        given = with_added(load_spec(sweep, settings=settings), settings)
        return settings, given, given.name
    return settings, None, sweep


def _sweep(sweep: str, results: str | None):
    """The store and the spec of a sweep given by name or by spec file: the stored spec.yaml,
    else the given spec file (a stored spec.yaml deleted)."""
    from dd.plan.states import load_stored_spec
    from dd.store.sweep import SweepStore

    settings, given, name = _given(sweep, results)
    store = SweepStore(settings.results, name)
    if given is not None and not store.spec_path.is_file():
        return store, given
    return store, load_stored_spec(store, max_trials=settings.max_trials)


def _plan(sweep: str, results: str | None, given_wins: bool = False):
    """The store and the plan of a sweep given by name or by spec file: the stored plan
    (``dd.store.plan``: no spec parsed, nothing imported that trains), else the given spec
    file's (a sweep never run, or ``given_wins``: dd status of a file counts what ``dd sweep
    FILE`` would plan)."""
    from dd.plan.states import load_plan, plan_of
    from dd.store.sweep import SweepStore

    settings, given, name = _given(sweep, results)
    store = SweepStore(settings.results, name)
    if given is not None and (given_wins or not store.spec_path.is_file()):
        return store, plan_of(given)
    return store, load_plan(store, max_trials=settings.max_trials)


def cmd_sweep(args: argparse.Namespace) -> int:
    from dd import api
    from dd.spec.settings import Settings

    settings = Settings.load(results=args.results)
    spec = api.load_spec(Path(args.spec), args.set or (), settings=settings)
    if args.dry_run:
        print(api.plan(spec, args.results))
        return 0
    result = api.sweep(
        spec,
        args.results,
        args.address,
        quiet=args.quiet,
        cpus=args.cpus,
        compile_cache=args.compile_cache,
        curves=not args.no_curves,
        debug=args.debug,
        connect_timeout=args.connect_timeout,
    )
    for line in result.messages:
        print(line, file=sys.stderr)
    for line in result.lines:
        print(line)
    return result.exit_code


def _write_curves(store, spec=None) -> None:
    from dd.analysis.aggregate import describe, write_curves

    aggregate = write_curves(store, spec)
    for line in describe(aggregate):
        print(line)
    print(f"results: {store.packs_dir}")
    for path in aggregate.figures:
        print(f"figure: {path}")


def cmd_curves(args: argparse.Namespace) -> int:
    _write_curves(*_sweep(args.sweep, args.results))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from dd.analysis.report import write_report

    store, spec = _sweep(args.sweep, args.results)
    while True:  # with --watch: rewritten every that many seconds while packs run
        path, running = write_report(store, args.output, spec, args.watch)
        print(f"report: {path}" + (" (packs running; the page reloads itself)" if running else ""))
        if not (args.watch and running) or threading.Event().wait(args.watch):
            return 0


def cmd_status(args: argparse.Namespace) -> int:
    from dd.analysis.status import print_profiles, status_lines

    store, plan = _plan(args.sweep, args.results, given_wins=True)
    if args.profile:
        return print_profiles(store, args.format)
    if not args.watch:
        print("\n".join(status_lines(store, plan)[0]))
        return 0
    live = None
    if sys.stdout.isatty():  # refreshed in place; plain blocks of lines otherwise
        from rich.live import Live
        from rich.text import Text

        live = Live(auto_refresh=False)
        live.start()
    try:
        while True:
            lines, running = status_lines(store, plan)
            if live is not None:
                live.update(Text("\n".join(lines)), refresh=True)
            else:
                print("\n".join(lines), flush=True)
            if not running or threading.Event().wait(args.watch):
                return 0
    finally:
        if live is not None:
            live.stop()


def cmd_export(args: argparse.Namespace) -> int:
    from dd.analysis.export import export_tensorboard

    store, plan = _plan(args.sweep, args.results)
    n = export_tensorboard(store, args.dir, list(plan.axes), every=args.all)
    print(f"{n} trials written to {args.dir} as TensorBoard runs (tensorboard --logdir {args.dir})")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Rename an older store's rows and parameter files to today's trial ids, store the plan
    that read commands read (what ``dd sweep`` does before it runs anything) and merge its
    pack files (``dd.store.compact``)."""
    from dd.plan.adopt import adopt_legacy_ids
    from dd.plan.states import store_plan
    from dd.store.compact import compact_locked

    store, spec = _sweep(args.sweep, args.results)
    adopted = adopt_legacy_ids(store, spec)
    store_plan(store, spec, [])
    merged = compact_locked(store)
    print(f"{store.name}: {adopted} trials renamed to current ids; plan stored; {merged} merged")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from dd.analysis.query import default_limits, query_arrow, run_query
    from dd.analysis.query_output import format_table, serialize, write_query
    from dd.spec.settings import Settings

    root = Settings.load(results=args.results).results
    limits = default_limits(args.memory_limit, args.threads, args.timeout)
    try:
        if args.output:
            if args.format == "table":
                raise DDError("--output: give --format csv, json or parquet for a file")
            n = write_query(args.sql, root, args.sweep, args.format, args.output, limits)
            print(f"{n} rows written to {args.output}", file=sys.stderr)
        elif args.format == "table":
            print(format_table(*run_query(args.sql, root, args.sweep, limits)))
        elif args.format in ("csv", "json"):
            table = query_arrow(args.sql, root, args.sweep, limits)
            sys.stdout.write(serialize(table, args.format).decode())
        else:
            raise DDError("--format parquet: give --output FILE")
    except KeyboardInterrupt:  # the query was stopped (connection.interrupt()); nothing to resume
        how, code = ("terminated", 143) if _terminated else ("interrupted", 130)
        print(f"dd: query {how}", file=sys.stderr)
        return code
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dd", description="Sweeps of double-descent and grokking experiments.")
    parser.add_argument("--version", action="version", version=f"dd {DD_VERSION}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    results_help = (
        "results root: a folder or an s3://, gs:// or file:// URI "
        "(default: $DD_RESULTS or ./results)"
    )
    p = add("sweep", cmd_sweep, "run every trial of a spec that is not stored yet")
    p.add_argument("spec", help="path of a YAML sweep spec (see sweeps/)")
    p.add_argument("--results", help=results_help)
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else local)")
    p.add_argument(
        "--connect-timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="how long a cluster at --address may take to answer "
        "(default: $DD_CONNECT_TIMEOUT, else 30)",
    )
    p.add_argument(
        "--cpus",
        type=_positive_int,
        help="CPUs the local Ray instance may use (default: all of this machine)",
    )
    p.add_argument(
        "--compile-cache",
        metavar="DIR",
        help="JAX persistent compilation cache of the workers; a folder they all "
        "reach is shared (default: $DD_COMPILE_CACHE, else ~/.cache/dd/jax; "
        "'off' compiles afresh)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="PATH=VALUE",
        help="override a spec field before validation, VALUE in YAML: "
        "--set train.epochs=100, --set 'grid.seed={range: [0, 5]}' (a grid. "
        "path sets that axis); repeatable; the stored spec is the one that ran",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the trials, the packs and their plans, and exit",
    )
    p.add_argument("--no-curves", action="store_true", help="skip curves and figures")
    p.add_argument("--quiet", action="store_true", help="no progress output")

    p = add("status", cmd_status, "count a sweep's done, missing and failed trials")
    p.add_argument("sweep", help="sweep name (or its spec file)")
    p.add_argument("--results", help=results_help)
    p.add_argument(
        "--profile",
        action="store_true",
        help="where each pack's time went: seconds per phase, programs compiled, bytes moved",
    )
    p.add_argument(
        "--format", choices=("table", "json"), default="table", help="of --profile (default table)"
    )
    p.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="refresh every SECONDS until no pack runs (in place on a terminal)",
    )

    p = add("export", cmd_export, "write a sweep's rows for another tool (tensorboard)")
    p.add_argument("format", choices=("tensorboard",), help="the tool")
    p.add_argument("sweep", help="sweep name (or its spec file)")
    p.add_argument("dir", help="the folder to write (one run per trial)")
    p.add_argument(
        "--all", action="store_true", help="every stored trial, not only the current spec's"
    )
    p.add_argument("--results", help=results_help)

    p = add("migrate", cmd_migrate, "bring an older store up to date (ids, plan, merged packs)")
    p.add_argument("sweep", help="sweep name (or its spec file)")
    p.add_argument("--results", help=results_help)

    p = add("curves", cmd_curves, "write a sweep's curve tables and figures")
    p.add_argument("sweep", help="sweep name (or its spec file)")
    p.add_argument("--results", help=results_help)

    p = add(
        "report",
        cmd_report,
        "write a sweep's self-contained HTML report (curves brought up to date first)",
    )
    p.add_argument("sweep", help="sweep name (or its spec file)")
    p.add_argument("--results", help=results_help)
    p.add_argument(
        "--output", help="where to write the page (default: <results>/<sweep>/report.html)"
    )
    p.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="rewrite the page every SECONDS while the sweep runs; the page reloads itself",
    )

    p = add(
        "query",
        cmd_query,
        "run DuckDB SQL over stored results (views: results and trials of the current "
        "specs, all_results and all_trials of every stored trial)",
    )
    p.add_argument("sql", help="SQL text, e.g. 'SELECT count(*) FROM results'")
    p.add_argument("--sweep", help="one sweep's results (default: every sweep)")
    p.add_argument("--results", help=results_help)
    p.add_argument(
        "--format",
        choices=("table", "csv", "json", "parquet"),
        default="table",
        help="table (default) on the terminal; csv or json to stdout or --output; "
        "parquet to --output",
    )
    p.add_argument("--output", help="write the result to this file (atomically)")
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="DuckDB's memory limit, e.g. 4GB (default: half of this machine's memory)",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        help="DuckDB's threads (default: half of this machine's CPUs, at least 1)",
    )
    p.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="stop the query after this long (exit 1); Ctrl-C or SIGTERM stop it at any time",
    )
    return parser


_terminated: list[int] = []  # the SIGTERM received, if any


def _terminate(signum, frame) -> None:
    """SIGTERM stops a sweep as Ctrl-C does: a KeyboardInterrupt in the main thread (the one
    exception Ray's waits let through), remembered as a termination."""
    _terminated.append(signum)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except DDError as e:
        if args.debug:
            raise
        print(f"dd: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        how, code = ("terminated", 143) if _terminated else ("interrupted", 130)
        print(f"dd: {how}; run the same command again to resume", file=sys.stderr)
        return code
    except BrokenPipeError:  # the reader went away (`dd query ... | head`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
