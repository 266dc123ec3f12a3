"""Progress of long operations: a rich bar on a terminal or in a Jupyter notebook (with
ipywidgets, which rich draws its live bar with there), plain lines otherwise, nothing if
quiet."""

from __future__ import annotations

import sys
import time


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel that can show rich's live bar."""
    from rich.console import Console

    if not Console().is_jupyter:
        return False
    try:
        import ipywidgets  # noqa: F401  (rich's live display in Jupyter)
    except ImportError:
        return False
    return True


def clock(seconds: float | None) -> str:
    """An ETA as 0h01m05s ("?" before one is measured)."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


class Progress:
    """Counts finished units (trials) against a total, with the ETA the driver measures
    (``set_eta``: from the packs' step rates, ``dd.run.eta``), not one from units done: packs
    differ in cost and run longest first. Plain lines come at each finished unit and, while
    none finishes, every ``PLAIN_EVERY_S`` seconds."""

    PLAIN_EVERY_S = 30.0

    def __init__(self, total: int, *, label: str, quiet: bool = False, unit: str = "trials"):
        self.total, self.label, self.quiet, self.unit = total, label, quiet, unit
        self.done = 0  # units finished well
        self.failed = 0  # units whose work failed (their pack failed)
        self._start = time.perf_counter()
        self._printed = self._start
        self.eta: float | None = None
        self._bar = None
        self._task = None
        if not quiet and (sys.stderr.isatty() or in_notebook()):
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress as RichProgress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(unit),
                TimeElapsedColumn(),
                TextColumn("ETA {task.fields[eta]}"),
                transient=False,
            )
            self._task = self._bar.add_task(label, total=total, eta=clock(None))

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, n: int, failed: bool = False) -> None:
        """``n`` more units finished: done, or ``failed``, counted apart."""
        if failed:
            self.failed += n
        else:
            self.done += n
        if self._bar is not None:
            description = f"{self.label} ({self.failed} failed)" if self.failed else self.label
            self._bar.update(self._task, advance=n, description=description)
        else:
            self._line()

    def set_eta(self, seconds: float | None) -> None:
        """The sweep's ETA now (None: not measured yet); a plain line if none came lately."""
        self.eta = seconds
        if self._bar is not None:
            self._bar.update(self._task, eta=clock(seconds))
        elif time.perf_counter() - self._printed >= self.PLAIN_EVERY_S:
            self._line()

    def _line(self) -> None:
        if self.quiet:
            return
        self._printed = time.perf_counter()
        print(
            f"{self.label}: {self.done}/{self.total} {self.unit} done"
            + (f", {self.failed} failed" if self.failed else "")
            + f", {self._printed - self._start:.0f}s elapsed, ETA {clock(self.eta)}",
            file=sys.stderr,
            flush=True,
        )

    def log(self, message: str) -> None:
        if self._bar is not None:
            self._bar.console.print(message)
        elif not self.quiet:
            print(message, file=sys.stderr, flush=True)
