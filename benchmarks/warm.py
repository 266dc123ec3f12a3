"""`make bench`, warm workers: what a second `dd.api.sweep` of the same shapes costs in one
Python process, against the first.

A notebook's sweeps: the default sweep's MLP at width 64, SEEDS seeds, EPOCHS epochs (its
training takes milliseconds, so the sweep is fixed cost), run by `dd.api.sweep` into a fresh
results folder with an empty compilation cache. The first call starts the local Ray
instance and a pack worker, loads the data and compiles; the second (another results folder,
so every trial runs again) takes the warm worker the first left (`dd.run.pool`). A third, after
`dd.api.release_workers()`, starts a fresh worker in the still running Ray: what a second
sweep cost before workers were kept. ``--in-flight`` times the default sweep cut (every
width, 1 seed, EPOCHS_CUT epochs) in one two-CPU worker or two one-CPU workers, each
running one or two packs at once (the next pack compiling while one trains).

Run: python benchmarks/warm.py [--report-only]. Writes benchmarks/warm.json and the
"## Warm workers" section of docs/bench.md.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import measure_and_write  # noqa: E402  (one writer of docs/bench.md)

SEEDS = [0, 1]
EPOCHS = 3
EPOCHS_CUT = 20
TARGET_RATIO = 0.1


def _spec(**train) -> dict:
    spec = yaml.safe_load((ROOT / "sweeps" / "mnist1d_mlp.yaml").read_text())
    spec["train"].update(train)
    return spec


def sweeps() -> dict[str, float]:
    """Seconds of each `dd.api.sweep` call, in this process (Ray started by the first), and
    of its run of the packs (the rest is the spec's resolution, the curves and figures)."""
    from dd import api

    spec = _spec(epochs=EPOCHS)
    spec.update(name="warm", grid={"model.width": [64], "seed": SEEDS})
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "cache")
        for name in ("first", "second", "released"):
            if name == "released":
                api.release_workers()
            start = time.perf_counter()
            result = api.sweep(
                copy.deepcopy(spec), Path(tmp) / name, quiet=True, compile_cache=cache
            )
            out[f"{name}_s"] = time.perf_counter() - start
            out[f"{name}_run_s"] = result.report.wall_time_s  # run_sweep: plan, Ray, packs
            assert result.report.trials_run == len(SEEDS), result
            if name == "second":
                (placement,) = result.report.placements
                out["second_programs_compiled"] = placement["profile"]["programs_compiled"]
                out["second_start_s"] = placement["profile"]["phases"]["start"]
    return out


CONFIGS = ((2, 1), (2, 2), (1, 1), (1, 2))  # (resources.cpus, packs_in_flight)


def in_flight() -> dict[str, float]:
    """Seconds of the default sweep cut per (cpus, packs in flight): one two-CPU worker or
    two one-CPU workers (the default), each running one or two packs at once."""
    from dd import api

    spec = _spec(epochs=EPOCHS_CUT)
    spec["grid"]["seed"] = [0]
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(2):  # alternating, each with its own empty compile cache
            for cpus, n in CONFIGS:
                api.release_workers()
                run = copy.deepcopy(spec) | {"name": "cut"}
                run["resources"] = {"cpus": cpus, "packs_in_flight": n}
                folder = Path(tmp) / f"{cpus}-{n}-{round_}"
                start = time.perf_counter()
                api.sweep(run, folder, quiet=True, curves=False, compile_cache=str(folder / "c"))
                out.setdefault(f"cpus_{cpus}_in_flight_{n}_s", []).append(
                    time.perf_counter() - start
                )
    return {k: min(v) for k, v in out.items()}


def measure() -> dict:
    report = {
        "machine": f"{os.uname().sysname} {os.uname().machine}, {os.cpu_count()} CPUs",
        **sweeps(),
    }
    if "--in-flight" in sys.argv:
        report |= in_flight()
    report["load_average"] = os.getloadavg()[0]
    return report


def markdown(r: dict) -> str:
    ratio = r["second_s"] / r["first_s"]
    met = "met" if ratio <= TARGET_RATIO else "missed"

    def row(what: str, name: str) -> str:
        total, run = r[f"{name}_s"], r[f"{name}_run_s"]
        return (
            f"| {what} | {total:.2f} | {total / r['first_s']:.2f} | {run:.2f} | "
            f"{run / r['first_run_s']:.3f} |"
        )

    lines = [
        "## Warm workers",
        "",
        f"Measured by `python benchmarks/warm.py --in-flight` on {r['machine']} (1-minute "
        f"load average {r['load_average']:.1f} at the end): `dd.api.sweep` of the default "
        f"sweep's MLP at width 64, {len(SEEDS)} seeds, {EPOCHS} epochs, called three times in "
        "one Python process, each into a fresh results folder; the whole call (with its curves "
        "and figures) and its run of the trials (`SweepReport.wall_time_s`: plan, Ray, workers, "
        "packs).",
        "",
        "| call | whole call (s) | / first | trials run (s) | / first |",
        "|---|---|---|---|---|",
        row("first (Ray started, a worker, data, compile)", "first"),
        row(
            f"second (the warm worker: {r['second_programs_compiled']} programs compiled, "
            f"worker start {r['second_start_s'] * 1e3:.0f} ms)",
            "second",
        ),
        row("after `dd.api.release_workers()` (a fresh worker, Ray up)", "released"),
        "",
        f"Target: the second call at most {TARGET_RATIO:g}x the first: {ratio:.2f} ({met}). "
        f"Its trials ran in {r['second_run_s'] / r['first_run_s']:.3f}x the first's run (which "
        "leaves out the part of Ray's start hidden behind the spec's resolution); the rest of "
        f"the second call, {r['second_s'] - r['second_run_s']:.1f} s, is the spec's resolution "
        "and the curves and figures (matplotlib), paid in every call.",
    ]
    if "cpus_1_in_flight_1_s" in r:
        base = r["cpus_1_in_flight_1_s"]
        lines += [
            "",
            f"Packs in flight, on the default sweep cut to 1 seed and {EPOCHS_CUT} epochs "
            "(`dd.api.sweep`, no curves, an empty compilation cache and fresh workers each "
            "(Ray already up), the faster of two alternating runs):",
            "",
            "| workers | packs in flight each | seconds | / default |",
            "|---|---|---|---|",
        ]
        for cpus, n in CONFIGS:
            t = r[f"cpus_{cpus}_in_flight_{n}_s"]
            workers = "one of 2 CPUs" if cpus == 2 else "two of 1 CPU (the default)"
            lines.append(f"| {workers} | {n} | {t:.1f} | {t / base:.2f} |")
        two = r["cpus_1_in_flight_2_s"] / base
        lines += [
            "",
            f"On this CPU the default's two one-pack workers were fastest; two packs in flight "
            f"in each took {two:.2f}x as long (the cores are already busy), so "
            "`resources.packs_in_flight: 0` means one pack per worker on a CPU. On a whole GPU "
            "it means two (the next pack compiles while one trains); not measured here, this "
            "machine has no GPU.",
        ]
    return "\n".join(lines + [""])


if __name__ == "__main__":
    measure_and_write([a for a in sys.argv[1:] if a != "--in-flight"], "warm", measure, markdown)
