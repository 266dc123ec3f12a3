"""`make bench`, ETA: the sweep's ETA (``dd.run.eta``) against the real remaining time of a
real sweep whose packs differ in cost.

`dd sweep sweeps/mnist1d_mlp.yaml` cut with --set to widths WIDTHS x epochs EPOCHS x SEEDS
seeds, at most MAX_PACK trials a pack (six packs: three program widths, two epoch counts),
on the local Ray instance with an empty compilation cache and no curves. While it runs,
the driver's record (``running/driver.json``: the ETA it computed, packs done) is read every
SAMPLE_S seconds; the run's real end is when the record goes (the last pack came back). Each
sample after the first pack finished gives predicted / real remaining time; the old ETA
(elapsed / trials done x trials left) is computed from the same samples for comparison.

Run: python benchmarks/eta.py [--report-only]. Writes benchmarks/eta.json and the "## ETA"
section of docs/bench.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import measure_and_write  # noqa: E402  (one writer of docs/bench.md)

WIDTHS = [8, 64, 300]
EPOCHS = [20, 60]
SEEDS = 3
MAX_PACK = 3
SAMPLE_S = 1.0
TARGET = 1.5  # the predicted / real remaining time, either way, after the first pack
MIN_REAL_S = 5.0  # samples closer to the end than this are left out (2 s between records)


def _command(results: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dd",
        "sweep",
        str(ROOT / "sweeps" / "mnist1d_mlp.yaml"),
        "--results",
        results,
        "--no-curves",
        "--compile-cache",
        "off",
        "--set",
        "name=eta_bench",
        "--set",
        f"grid.model.width={WIDTHS}",
        "--set",
        f"grid.train.epochs={EPOCHS}",
        "--set",
        f"grid.seed={{range: [0, {SEEDS}]}}",
        "--set",
        f"resources.max_pack={MAX_PACK}",
    ]


def measure() -> dict:
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "eta_bench" / "running" / "driver.json"
        start = time.time()
        run = subprocess.Popen(_command(tmp), stderr=subprocess.PIPE, text=True)
        seen_record, end = False, None
        while run.poll() is None:
            try:
                r = json.loads(record.read_text())
            except (OSError, ValueError):
                r = None
            if r is not None:
                seen_record = True
                if not samples or samples[-1]["updated_at"] != r["updated_at"]:
                    samples.append(r)
            elif seen_record and end is None:
                end = time.time()  # the record goes once the last pack came back
            time.sleep(SAMPLE_S)
        stderr = run.stderr.read()
        if run.returncode != 0:
            raise SystemExit(f"the sweep failed ({run.returncode}):\n{stderr[-3000:]}")
        end = end or time.time()
    after = []
    for r in samples:
        if r["packs_done"] < 1 or r["eta_s"] is None:
            continue
        real = end - r["updated_at"]
        elapsed = r["updated_at"] - r["started_at"]
        old = elapsed / r["trials_done"] * (r["trials"] - r["trials_done"])
        after.append({"at_s": elapsed, "eta_s": r["eta_s"], "real_s": real, "old_eta_s": old})
    return {
        "machine": f"{os.uname().sysname} {os.uname().machine}, {os.cpu_count()} CPUs",
        "load_average": os.getloadavg(),
        "command": " ".join(_command("RESULTS")[3:]).replace(f"{ROOT}/", ""),
        "packs": samples[-1]["packs"] if samples else None,
        "wall_s": end - start,
        "samples_after_first_pack": after,
        "stderr_tail": stderr[-2000:],
    }


def markdown(r: dict) -> str:
    after = [a for a in r["samples_after_first_pack"] if a["real_s"] >= MIN_REAL_S]
    load = ", ".join(f"{x:.1f}" for x in r["load_average"])
    command = r["command"].removeprefix("dd ").replace(f"{ROOT}/", "")
    lines = [
        "## ETA",
        "",
        f"Measured by `python benchmarks/eta.py` on {r['machine']} (load average {load} at "
        f"the end, 1/5/15 minutes; other work shared the machine): `dd {command}` "
        f"({r['packs']} packs: {len(WIDTHS)} widths x {len(EPOCHS)} epoch counts "
        f"{EPOCHS} x {SEEDS} seeds, at most {MAX_PACK} trials a pack; the planner put the "
        f"widths into programs of its choosing), {r['wall_s']:.0f} s from the command to "
        "the last pack. The driver's ETA (`running/driver.json`, from the packs' measured "
        "step rates: `dd.run.eta`) read every second, against the real remaining time; "
        "the old ETA (elapsed / trials done x trials left) from the same samples.",
        "",
    ]
    if not after:
        return "\n".join(lines + ["No sample came after the first pack finished.", ""])
    first = after[0]
    ratios = [a["eta_s"] / a["real_s"] for a in after]
    old = [a["old_eta_s"] / a["real_s"] for a in after]
    worst = max(max(ratios), 1 / min(ratios))
    met = "met" if worst <= TARGET else "missed"
    lines += [
        "| after the first pack | predicted / real remaining | old ETA / real remaining |",
        "|---|---|---|",
        f"| first sample ({first['at_s']:.0f} s in, {first['real_s']:.0f} s left) | "
        f"{ratios[0]:.2f} | {old[0]:.2f} |",
        f"| every sample ({len(after)}, to {MIN_REAL_S:.0f} s before the end): range | "
        f"{min(ratios):.2f}-{max(ratios):.2f} | {min(old):.2f}-{max(old):.2f} |",
        "",
        f"Target: within a factor of {TARGET} either way after the first pack: {met} "
        f"(worst factor {worst:.2f}).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    measure_and_write(sys.argv[1:], "eta", measure, markdown)
