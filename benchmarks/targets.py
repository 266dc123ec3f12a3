"""`make bench`, last step: every performance target against the figure measured for it.

Reads what the other benchmark scripts wrote (benchmarks/results.json, workload.json,
workload_jax.json, cnn_workload.json, startup.json, warm.json, warm_instance.json,
warm_cut.json) and writes the "## Targets" section of docs/bench.md: per target, the measured
figure, the target, met or missed, and the section holding the measurement and its profile. A
target whose measurement is absent says so.

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
from warm_instance import TARGET_RATIO as UP_RATIO, TARGET_START_S as UP_START_S  # noqa: E402


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
    against = three if three is not None and "jax_minimal" in three["walls_s"] else None
    against = against or _load("workload_jax.json")  # `workload.py --jax-only 3`
    if against is None:
        out.append((what, "not measured", "<= 1.3", None, "The default sweep"))
    else:
        ratio = against["walls_s"]["dd"] / against["walls_s"]["jax_minimal"]
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
    up = _load("warm_instance.json")
    if up:
        fresh, second = up["median"]["fresh"], up["median"]["warm_second"]
        ratio = second["exit_s"] / fresh["exit_s"]
        out += [
            (
                "start-up to the first stored trial after dd up, the worker warm (s)",
                f"{second['first_trial_s']:.1f}",
                f"<= {UP_START_S:.0f}",
                second["first_trial_s"] <= UP_START_S,
                "Warm instance (dd up)",
            ),
            (
                "a second CLI dd sweep of the same shapes after dd up / one without",
                f"{ratio:.2f}",
                f"<= {UP_RATIO:g}",
                ratio <= UP_RATIO,
                "Warm instance (dd up)",
            ),
        ]
    cut_up = _load("warm_cut.json")  # benchmarks/warm_cut.py
    what = "20-epoch cut after dd up, new seeds: dd / PyTorch"
    if cut_up is None:
        out.append((what, "not measured", "<= 1.0", None, "Warm instance (dd up)"))
    else:
        ratio = cut_up["dd_up_over_pytorch"]
        out.append((what, f"{ratio:.2f}", "<= 1.0", ratio <= 1.0, "Warm instance (dd up)"))
    return out


def gaps() -> list[str]:
    """Where the time of each missed target goes, from the same measurements."""
    out = []
    cut = _load("results.json")
    startup = _load("startup.json")
    if cut and cut["median_s"]["dd"] > cut["median_s"]["pytorch"]:
        m, o = cut["median_s"], cut["overhead"]["dd"]
        first = f"{startup['median']['first_trial_done_s']:.1f} s" if startup else "unmeasured"
        out.append(
            f"- **The 20-epoch cut.** Fixed costs: compiling is the "
            f"{m['dd'] - m['dd_warm_cache']:.1f} s between the empty and the primed cache; "
            f"a sweep of {o['trials']} trivial trials (Python, Ray and worker start, nearly "
            f"no training) took {o['sweep_s']:.1f} s and the first stored trial comes "
            f"{first} after the command; the PyTorch loop trains in {m['pytorch']:.1f} s "
            "with none of it. What is left to close it: a process that starts no Ray for a "
            "small local sweep, and fewer or cached compiles."
        )
    workload = _load("workload.json")
    runs = {r["seeds"]: r for r in workload["runs"]} if workload else {}
    for seeds, r in sorted(runs.items()):
        packs = r.get("packs_s", {}).get("dd")
        if not packs:
            continue
        busy, wall = sum(p["s"] for p in packs), r["walls_s"]["dd"]
        jax_s = r["walls_s"].get("jax_minimal")
        peer = f"; the minimal JAX program took {jax_s:.0f} s" if jax_s else ""
        top = packs[0]
        out.append(
            f"- **The default sweep, {seeds} seed(s).** {wall:.0f} s of wall: "
            f"{busy:.0f} s of pack time over two slots in {len(packs)} packs (the largest, "
            f"widths {top['widths'][0]}-{top['widths'][-1]}, {top['s']:.0f} s){peer}. "
            "Per pack dd adds what the peers skip: 20 evaluation points on 4000 training "
            "and 12000 test examples, a checkpoint and the rows, and its start-up and "
            "compiles; the training steps themselves are small matmuls that XLA's CPU "
            "backend runs far below its large-matmul peak."
        )
    if startup and startup["median"]["first_trial_done_s"] > TARGET_S:
        m = startup["median"]
        out.append(
            f"- **Start-up.** {m['planned_s']:.1f} s to the printed plan (Python, imports, "
            f"the spec, planning, the local Ray instance: Ray now starts during planning), "
            f"then {m['first_trial_done_s'] - m['planned_s']:.1f} s to the first stored "
            f"trial, {m['pack_s']:.1f} s of it inside the pack (mostly compiling its two "
            '"Compile" programs). A primed compilation cache removes most of the latter.'
        )
    warm = _load("warm.json")
    if warm and warm["second_s"] / warm["first_s"] > WARM_RATIO:
        rest = warm["second_s"] - warm["second_run_s"]
        out.append(
            f"- **The second API sweep.** Its trials ran in {warm['second_run_s']:.2f} s "
            f"({warm['second_run_s'] / warm['first_run_s']:.3f}x the first run: the warm "
            f"worker compiled {warm['second_programs_compiled']} programs); the other "
            f"{rest:.1f} s of the call are the spec's resolution and the curves' figures "
            "(matplotlib's layout and PNG writing), paid by every call."
        )
    up = _load("warm_instance.json")
    if up and up["median"]["warm_second"]["first_trial_s"] > UP_START_S:
        m = up["median"]["warm_second"]
        out.append(
            f"- **The warm instance's sweep.** With the worker warm (nothing started, nothing "
            f"compiled), {m['joined_s']:.1f} s of its {m['first_trial_s']:.1f} s go before it "
            "has joined the instance: Python and dd's imports (JAX and Flax through the model "
            "registry that reads the spec) and the spec; the pack itself takes "
            f"{m['first_trial_s'] - m['planned_s']:.1f} s."
        )
    cnn = _load("cnn_workload.json")
    if cnn and cnn["walls_s"]["dd"] > cnn["walls_s"]["pytorch"] and "packs_s" in cnn:
        packs = cnn["packs_s"]["dd"]
        out.append(
            f"- **The CNN workload.** dd's packs took {sum(p['s'] for p in packs):.0f} s "
            f"of worker time over two slots, and the primed cache's run is "
            f"{cnn['walls_s']['dd_warm_cache'] / cnn['walls_s']['pytorch']:.2f}x PyTorch: "
            "the gap is the compiles. On the CPU a CNN pack runs its replicas one after "
            "another in its program (k <= 16 padded to 16); block packs win per step here "
            'but compile one program per mix of widths ("Block packs").'
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
