"""`make bench`, last step: every performance target against the figure measured for it.

Reads what the other benchmark scripts wrote (benchmarks/results.json, workload.json,
cnn_workload.json, startup.json, warm.json) and writes the "## Targets" section of
docs/bench.md: per target, the measured figure, the target, met or missed, and the section
holding the measurement and its profile. A target whose measurement is absent says so.

Run: python benchmarks/targets.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import write_section  # noqa: E402  (the one writer of docs/bench.md)
from startup import TARGET_S  # noqa: E402
from warm import TARGET_RATIO as WARM_RATIO  # noqa: E402


def _load(name: str) -> dict | None:
    path = ROOT / "benchmarks" / name
    return json.loads(path.read_text()) if path.exists() else None


def rows() -> list[tuple[str, str, str, bool | None, str]]:
    """(what, measured, target, met, where) for each target."""
    out: list[tuple[str, str, str, bool | None, str]] = []
    cut = _load("results.json")
    if cut:
        m = cut["median_s"]
        cold, warm, torch = m["dd"] / m["pytorch"], m["dd_warm_cache"] / m["pytorch"], 1.0
        out.append(
            (
                "20-epoch cut: dd (empty cache) / PyTorch",
                f"{cold:.2f}",
                f"<= {torch:.1f}",
                cold <= torch,
                "The 20-epoch cut",
            )
        )
        out.append(
            (
                "20-epoch cut: dd (primed cache) / PyTorch",
                f"{warm:.2f}",
                "<= 0.5",
                warm <= 0.5,
                "The 20-epoch cut",
            )
        )
    workload = _load("workload.json")
    runs = {r["seeds"]: r for r in workload["runs"]} if workload else {}
    one = runs.get(1)
    what = "default sweep, 1 seed: PyTorch / dd"
    if one is None:
        out.append((what, "not measured", ">= 4", None, "The default sweep"))
    else:
        ratio = one["walls_s"]["pytorch"] / one["walls_s"]["dd"]
        out.append((what, f"{ratio:.2f}", ">= 4", ratio >= 4, "The default sweep"))
    three = runs.get(3)
    what = "default sweep, 3 seeds: dd / minimal hand-written JAX"
    if three is None or "jax_minimal" not in three["walls_s"]:
        out.append((what, "not measured", "<= 1.3", None, "The default sweep"))
    else:
        ratio = three["walls_s"]["dd"] / three["walls_s"]["jax_minimal"]
        out.append((what, f"{ratio:.2f}", "<= 1.3", ratio <= 1.3, "The default sweep"))
    if three is not None:
        over = three["walls_s"]["dd"] / (three["flops"] / workload["matmul_peak"])
        what = "default sweep, 3 seeds: dd / FLOP floor"
        out.append((what, f"{over:.1f}", "<= 2", over <= 2, "The default sweep"))
    cnn = _load("cnn_workload.json")
    if cnn:
        w = cnn["walls_s"]
        for name in ("dd", "dd_warm_cache"):
            ratio = w[name] / w["pytorch"]
            out.append(
                (
                    f"CNN workload: {name} / PyTorch per replica-epoch",
                    f"{ratio:.2f}",
                    "<= 1",
                    ratio <= 1,
                    "The CNN workload",
                )
            )
        if full := cnn.get("full_sweep"):
            minutes = full["wall_s"] / 60
            out.append(
                (
                    "sweeps/mnist1d_cnn.yaml, whole (min; dd 0.2.0: over 60)",
                    f"{minutes:.1f}",
                    "<= 6 (10x faster)",
                    minutes <= 6,
                    "The CNN workload",
                )
            )
    startup = _load("startup.json")
    if startup:
        s = startup["median"]["first_trial_done_s"]
        out.append(
            (
                "start-up to the first trained step (s, bounded by the first trial stored)",
                f"{s:.1f}",
                f"<= {TARGET_S:.0f}",
                s <= TARGET_S,
                "Start-up",
            )
        )
    warm = _load("warm.json")
    if warm:
        ratio = warm["second_s"] / warm["first_s"]
        out.append(
            (
                "a second dd.api.sweep of the same shapes / the first (one process)",
                f"{ratio:.2f}",
                f"<= {WARM_RATIO:g}",
                ratio <= WARM_RATIO,
                "Warm workers",
            )
        )
    return out


def gaps() -> list[str]:
    """Where the time of each missed group goes, from the same measurements, and what would
    close it."""
    out = []
    cut = _load("results.json")
    if cut and cut["median_s"]["dd"] > cut["median_s"]["pytorch"]:
        m, o = cut["median_s"], cut["overhead"]["dd"]
        out.append(
            f"- **The 20-epoch cut.** It is fixed cost: compiling is the "
            f"{m['dd'] - m['dd_warm_cache']:.1f} s between the empty and the primed cache, "
            f"and the rest is mostly start-up (a sweep of {o['trials']} trivial trials, "
            f"nearly all Python, Ray and worker start, took {o['sweep_s']:.1f} s), while the "
            f"PyTorch loop trains in {m['pytorch']:.1f} s with none of it. What would close "
            f"it: running small local sweeps in-process without Ray, a worker pool kept "
            f'warm between sweeps, and fewer programs per pack ("Compile").'
        )
    workload = _load("workload.json")
    if workload:
        runs = {r["seeds"]: r for r in workload["runs"]}
        one, three = runs.get(1), runs.get(3)
        if one and three and "packs_s" in one and "packs_s" in three:
            busy1 = sum(p["s"] for p in one["packs_s"]["dd"])
            busy3 = sum(p["s"] for p in three["packs_s"]["dd"])
            floor3 = three["flops"] / workload["matmul_peak"]
            top = three["packs_s"]["dd"][0]
            out.append(
                f"- **The default sweep.** The slots are kept busy (3 seeds: "
                f"{busy3:.0f} s of pack time in {three['walls_s']['dd']:.0f} s of wall on two "
                f"slots), so the gap is the engine's step speed: {busy3:.0f} s of packs "
                f"against a {floor3:.0f} s FLOP floor. The steps are small matmuls (batch "
                f"100, widths up to 300) that XLA's CPU backend runs far below its "
                f'large-matmul peak (the engine table in "The 20-epoch cut"); the '
                f"largest pack, widths {top['widths'][0]}-{top['widths'][-1]} in one "
                f"program, took {top['s']:.0f} s. Packing helps: three seeds did 3x the "
                f"work of one in {busy3 / busy1:.2f}x its pack time. What would close it: "
                f"more replicas per program (wider batched matmuls) and a step that "
                f"fuses the small layers; not more slots, which are already full."
            )
    startup = _load("startup.json")
    if startup and startup["median"]["first_trial_done_s"] > TARGET_S:
        m = startup["median"]
        out.append(
            f"- **Start-up.** {m['planned_s']:.1f} s to the printed plan (Python, imports, "
            f"the local Ray instance), then {m['first_trial_done_s'] - m['planned_s']:.1f} s "
            f"to the first stored trial, {m['pack_s']:.1f} s of it inside the pack (mostly "
            f'compiling four programs: "Compile"). What would close it: one program for '
            f"the setup draws and initialisation, a worker that imports JAX while Ray "
            f"starts, and a primed compilation cache (the warm-cache rows)."
        )
    cnn = _load("cnn_workload.json")
    if cnn and cnn["walls_s"]["dd"] > cnn["walls_s"]["pytorch"] and "packs_s" in cnn:
        packs = cnn["packs_s"]["dd"]
        out.append(
            f"- **The CNN workload.** dd's packs took {sum(p['s'] for p in packs):.0f} s "
            f"of worker time over two slots; on the CPU a CNN pack runs its replicas one "
            f"after another in a program padded to k = 16 (wider nets: each layer's "
            f"channels to a multiple of 8; the shared program saves compiles, but a narrow "
            f"net pays for the padded width). What "
            f"would close it: unpadded programs for narrow CNNs on the CPU when the sweep "
            f"is long enough to pay for the extra compiles."
        )
    return out


def markdown() -> str:
    lines = [
        "## Targets",
        "",
        "Written by `python benchmarks/targets.py` from the other scripts' measurements; "
        "each row names the section that holds its measurement, its command and, for a "
        "target missed, where the time goes.",
        "",
        "| figure | measured | target | | measured in |",
        "|---|---|---|---|---|",
    ]
    for what, measured, target, met, where in rows():
        verdict = {True: "met", False: "missed", None: "not measured"}[met]
        lines.append(f"| {what} | {measured} | {target} | {verdict} | {where} |")
    if found := gaps():
        lines += ["", "Where the time of the missed targets goes, and what would close it:", ""]
        lines += found
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    section = markdown()
    write_section(section)
    print(section)
