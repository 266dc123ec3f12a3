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


def cmd_up(args: argparse.Namespace) -> int:
    from dd.run.warm import up
    from dd.spec.settings import Settings

    up(Settings.load().warm_state, idle_s=args.idle, cpus=args.cpus, say=_say)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from dd.run.warm import down
    from dd.spec.settings import Settings

    down(Settings.load().warm_state, say=_say)
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (``dd.cli_parsers``), each calling its ``cmd_`` function."""
    from dd.cli_parsers import build_parser as build

    return build({name[4:]: f for name, f in globals().items() if name.startswith("cmd_")})


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
