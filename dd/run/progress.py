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


class Progress:
    """Counts finished units (trials) against a total, with an ETA."""

    def __init__(self, total: int, *, label: str, quiet: bool = False, unit: str = "trials"):
        self.total, self.label, self.quiet, self.unit = total, label, quiet, unit
        self.done = 0  # units finished well
        self.failed = 0  # units whose work failed (their pack failed)
        self._start = time.perf_counter()
        self._bar = None
        self._task = None
        if not quiet and (sys.stderr.isatty() or in_notebook()):
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress as RichProgress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(unit),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._task = self._bar.add_task(label, total=total)

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
        finished = self.done + self.failed
        if self._bar is not None:
            description = f"{self.label} ({self.failed} failed)" if self.failed else self.label
            self._bar.update(self._task, advance=n, description=description)
        elif not self.quiet:
            elapsed = time.perf_counter() - self._start
            eta = elapsed / finished * (self.total - finished) if finished else float("nan")
            print(
                f"{self.label}: {self.done}/{self.total} {self.unit} done"
                + (f", {self.failed} failed" if self.failed else "")
                + f", {elapsed:.0f}s elapsed, ETA {eta:.0f}s",
                file=sys.stderr,
                flush=True,
            )

    def log(self, message: str) -> None:
        if self._bar is not None:
            self._bar.console.print(message)
        elif not self.quiet:
            print(message, file=sys.stderr, flush=True)
