"""How one pack runs: everything ``dd.engine.train.train_pack`` needs besides its trials.

The worker (``dd.run.worker``) builds one ``PackOptions`` per pack from the sweep's
``resources`` and its own settings and hands it to the engine, rather than threading a dozen
keyword arguments through each call. What decides a trial's numbers (its precision, its
optimizer, its data) is in the trial itself (``dd.spec.config.Trial``), never here: these
options change how a pack is laid out, saved and watched, not what it computes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dd.datasets.base import Locations
from dd.engine.profile import PackProfile


@dataclasses.dataclass(frozen=True, kw_only=True)
class PackOptions:
    """The options of one pack run (all optional: the defaults train it plainly, unsaved).

    - Layout: ``n_rows``, the row count replicas are padded to (default: the largest
      ``n_train``), which with the pack key fixes the compiled programs
      (``dd.engine.programs``); ``execution`` (``resources.execution``) and ``loop`` (when
      given) set the plan (``dd.engine.train.execution_plan``); ``memory_budget`` (bytes):
      raise ``OutOfMemory`` before training if the compiled step program, evaluation
      included, needs more (``dd.engine.memory.check_fits``).
    - Data: ``locations``, where the dataset's files are (the driver's settings).
    - Saving: with ``checkpoint`` and ``checkpoint_every`` > 0 the whole state (parameters,
      optimizer state, step counts, divergence flags, the rows so far) is saved atomically
      every that many epochs, and a saved state is resumed from; ``checkpoint_seconds`` > 0
      also saves one after about that many seconds of training (training stops that often,
      at the measured epoch rate), so an interrupt costs minutes, not the pack.
      ``param_files`` (one per trial) receive the final parameters (``dd.engine.checkpoint``).
    - Watching: ``on_evaluation(epoch, rows)`` is called at every evaluation point with the
      rows so far (each complete but for a divergence found later); ``on_progress(epoch)`` is
      told the epoch reached after each call to the device, and with ``progress_seconds`` > 0
      training stops about that often (the first stop after one epoch, so compiling is out
      of the rate) to tell it, no evaluation added; ``profile`` receives where the time went
      (``dd.engine.profile``; a fresh one by default).
    """

    n_rows: int | None = None
    execution: str = "auto"
    loop: str | None = None
    memory_budget: int | None = None
    locations: Locations = dataclasses.field(default_factory=Locations)
    checkpoint: Path | None = None
    checkpoint_every: int = 0
    checkpoint_seconds: float = 0.0
    param_files: tuple[Path, ...] | None = None
    on_evaluation: Callable[[int, list[list[dict[str, Any]]]], None] | None = None
    on_progress: Callable[[int], None] | None = None
    progress_seconds: float = 0.0
    profile: PackProfile | None = None

    def part(self, part: slice, side: str) -> PackOptions:
        """These options for one half of a pack split on out-of-memory (``side`` "a" or
        "b"): its own checkpoint file and its trials' parameter files."""
        checkpoint = self.checkpoint
        if checkpoint is not None:
            checkpoint = checkpoint.with_name(f"{checkpoint.stem}.{side}{checkpoint.suffix}")
        files = tuple(self.param_files[part]) if self.param_files else None
        return dataclasses.replace(self, checkpoint=checkpoint, param_files=files)
