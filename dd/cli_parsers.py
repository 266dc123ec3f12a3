"""The ``dd`` command line's parsers: every command's arguments and help (``dd.cli`` runs
them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

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


def _duration(text: str) -> float:
    from dd.run.warm import parse_duration

    try:
        return parse_duration(text)
    except DDError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--idle: ")) from None


def build_parser(commands: dict[str, Callable]) -> argparse.ArgumentParser:
    """``dd``'s parser; ``commands`` maps each command's name to its function (``dd.cli``)."""
    parser = _Parser(prog="dd", description="Sweeps of double-descent and grokking experiments.")
    parser.add_argument("--version", action="version", version=f"dd {DD_VERSION}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=commands[name])
        return p

    results_help = (
        "results root: a folder or an s3://, gs:// or file:// URI "
        "(default: $DD_RESULTS or ./results)"
    )
    p = add("sweep", "run every trial of a spec that is not stored yet")
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

    p = add("status", "count a sweep's done, missing and failed trials")
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

    p = add("export", "write a sweep's rows for another tool (tensorboard)")
    p.add_argument("format", choices=("tensorboard",), help="the tool")
    p.add_argument("sweep", help="sweep name (or its spec file)")
    p.add_argument("dir", help="the folder to write (one run per trial)")
    p.add_argument(
        "--all", action="store_true", help="every stored trial, not only the current spec's"
    )
    p.add_argument("--results", help=results_help)

    p = add("migrate", "bring an older store up to date (ids, plan, merged packs)")
    p.add_argument("sweep", help="sweep name (or its spec file)")
    p.add_argument("--results", help=results_help)

    p = add("curves", "write a sweep's curve tables and figures")
    p.add_argument("sweep", help="sweep name (or its spec file)")
    p.add_argument("--results", help=results_help)

    p = add(
        "report",
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

    p = add(
        "up",
        "start a warm local Ray instance that outlives the command: sweeps without --address "
        "use it and keep its pack workers (their compiled programs) warm until dd down",
    )
    p.add_argument(
        "--idle",
        type=_duration,
        default=1800.0,
        metavar="TIME",
        help="stop a pack worker idle this long: 90s, 30m, 2h (default 30m)",
    )
    p.add_argument("--cpus", type=_positive_int, help="CPUs the instance may use (default: all)")

    add("down", "stop the warm instance of dd up (every process of it)")
    return parser
