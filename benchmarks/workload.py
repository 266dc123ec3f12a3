"""`make bench`, the workload users run: the default sweep (sweeps/mnist1d_mlp.yaml: 19
widths, 500 epochs) at SEEDS seeds, through `dd sweep` with an empty and with a primed
compilation cache, against an eager PyTorch loop over the same models, in one run on one
machine, with the FLOP floor from the matmul peak measured in the same run and the final
test errors width by width (equal work shows as equal errors within seed noise).

Run: python benchmarks/workload.py [SEEDS ...] (default: 1). Writes
benchmarks/workload.json and the "## The default sweep" section of docs/bench.md.
`python benchmarks/workload.py --jax-only SEEDS` runs just `dd sweep` (empty cache) and the
minimal JAX program at SEEDS seeds, one after the other, and writes benchmarks/workload_jax.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench  # noqa: E402  (the shared data, PyTorch loop and FLOP count)
from jax_peer import run_jax  # noqa: E402  (the minimal hand-written JAX program)

SPEC = ROOT / "sweeps" / "mnist1d_mlp.yaml"


def dd_sweep(
    spec: Path, folder: Path, cache: Path, *sets: str
) -> tuple[float, dict[int, float], list[dict]]:
    """`dd sweep` of ``spec`` with ``--set`` overrides, as a user runs it (a fresh process,
    local Ray, the compilation cache in ``cache``): its wall time, the mean final test error
    per width, and each pack's widths and worker-side seconds (the profile)."""
    name = yaml.safe_load(spec.read_text()).get("name", spec.stem)  # as dd.plan.sweep names it
    command = bench.dd_command("sweep", spec, "--results", folder)
    command += ["--compile-cache", str(cache), "--no-curves", "--quiet"]
    start = time.perf_counter()
    subprocess.run(command + [a for s in sets for a in ("--set", s)], check=True)
    wall = time.perf_counter() - start
    from dd.api import query

    table = query(
        "SELECT model_width AS w, avg(test_error) AS e FROM trials GROUP BY 1", name, folder
    )
    packs = query(
        "SELECT list(DISTINCT model_width ORDER BY model_width) AS widths, "
        "count(DISTINCT trial_id) AS trials, max(wall_time_s) AS s FROM results "
        "GROUP BY pack_id ORDER BY s DESC",
        name,
        folder,
    ).to_pylist()
    errors = dict(zip(table["w"].to_pylist(), table["e"].to_pylist(), strict=True))
    return wall, errors, packs


def measure(seeds: int) -> dict:
    spec = yaml.safe_load(SPEC.read_text())
    widths, epochs = spec["grid"]["model.width"], spec["train"]["epochs"]
    out = {"seeds": seeds, "widths": widths, "epochs": epochs, "walls_s": {}, "test_error": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, results, cache in (("dd", "cold", "cache"), ("dd_warm_cache", "warm", "cache")):
            seed_axis = f"grid.seed={{range: [0, {seeds}]}}"
            wall, errors, packs = dd_sweep(SPEC, tmp / results, tmp / cache, seed_axis)
            out["walls_s"][name], out["test_error"][name] = wall, errors
            out.setdefault("packs_s", {})[name] = packs
            print(f"{seeds} seeds: {name} {wall:.1f} s", flush=True)
        data = bench.arrays()
        wall, errors = bench.run_torch(data, widths, list(range(seeds)), epochs)
        out["walls_s"]["pytorch"], out["test_error"]["pytorch"] = wall, errors
        print(f"{seeds} seeds: pytorch {wall:.1f} s", flush=True)
        wall, errors = run_jax(data, widths, list(range(seeds)), epochs)
        out["walls_s"]["jax_minimal"], out["test_error"]["jax_minimal"] = wall, errors
        print(f"{seeds} seeds: jax_minimal {wall:.1f} s", flush=True)
        if seeds == 1:  # Ray Tune (a jitted step per batch, a trial per task) at one seed
            wall, errors = bench.run_tune(data, tmp / "tune", widths, [0], epochs)
            out["walls_s"]["ray_tune"], out["test_error"]["ray_tune"] = wall, errors
            print(f"{seeds} seeds: ray_tune {wall:.1f} s", flush=True)
    out["flops"] = seeds * sum(bench.train_flops(w, epochs) for w in widths)
    return out


def profile(run: dict, what: str) -> list[str]:
    """Where dd's time went in ``run``'s empty-cache sweep: each pack's worker-side seconds."""
    packs = run.get("packs_s", {}).get("dd")
    if not packs:
        return []
    lines = [
        "",
        f"Where dd's time goes, {what}, empty cache: the packs' own seconds (worker side: "
        f"data, compile, train, evaluate) add up to {sum(p['s'] for p in packs):.1f} s over "
        f"the slots (one per CPU), against {run['walls_s']['dd']:.1f} s of wall time.",
        "",
        "| pack's widths | trials | seconds |",
        "|---|---|---|",
    ]
    for p in packs:
        w = p["widths"]
        span = f"{w[0]}-{w[-1]}" if len(w) > 1 else str(w[0])
        lines.append(f"| {span} | {p['trials']} | {p['s']:.1f} |")
    return lines


def markdown(report: dict) -> str:
    run_seeds = " ".join(str(r["seeds"]) for r in report["runs"])
    lines = [
        "## The default sweep",
        "",
        f"Measured by `python benchmarks/workload.py {run_seeds}` "
        f"on {report['machine']} (1-minute load average {report['load_average']:.1f} at "
        f"the end): `dd sweep sweeps/mnist1d_mlp.yaml` (19 widths, 500 epochs) with an "
        "empty and with a primed compilation cache, against an eager PyTorch loop over the "
        "same models and a minimal hand-written JAX program (`benchmarks/jax_peer.py`: per "
        "width one compile, vmap over seeds, one `lax.scan` over the steps, no evaluation "
        f"points). Matmul peak measured in the same run: "
        f"{report['matmul_peak'] / 1e9:.1f} GFLOP/s.",
        "",
        "| seeds | dd (s) | dd, warm cache (s) | PyTorch loop (s) | Ray Tune (s) | "
        "minimal JAX (s) | PyTorch / dd | dd / minimal JAX | FLOP floor (s) | dd / floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        w = r["walls_s"]
        floor = r["flops"] / report["matmul_peak"]
        tune = f"{w['ray_tune']:.1f}" if "ray_tune" in w else "not run"
        jax_s = f"{w['jax_minimal']:.1f}" if "jax_minimal" in w else "not run"
        jax_ratio = f"{w['dd'] / w['jax_minimal']:.2f}" if "jax_minimal" in w else "-"
        lines.append(
            f"| {r['seeds']} | {w['dd']:.1f} | {w['dd_warm_cache']:.1f} | "
            f"{w['pytorch']:.1f} | {tune} | {jax_s} | {w['pytorch'] / w['dd']:.2f} | "
            f"{jax_ratio} | {floor:.1f} | {w['dd'] / floor:.1f} |"
        )
    for r in report["runs"]:
        lines += profile(r, f"{r['seeds']} seed(s)")
    for r in report["runs"]:
        widths = r["widths"]
        lines += [
            "",
            f"Final test error per width, {r['seeds']} seed(s):",
            "",
            "| contender | " + " | ".join(str(w) for w in widths) + " |",
            "|---|" + "---|" * len(widths),
        ]
        for name, err in r["test_error"].items():
            lines.append(
                f"| {name} | "
                + " | ".join(f"{err.get(w, err.get(str(w))):.3f}" for w in widths)
                + " |"
            )
    return "\n".join(lines) + "\n"


def dd_against_jax(seeds: int) -> dict:
    """`dd sweep` with an empty compilation cache against the minimal JAX program, same
    seeds, same run: the ratio issue 34 sets at most 1.3."""
    spec = yaml.safe_load(SPEC.read_text())
    widths, epochs = spec["grid"]["model.width"], spec["train"]["epochs"]
    out = {"seeds": seeds, "widths": widths, "epochs": epochs, "walls_s": {}, "test_error": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seed_axis = f"grid.seed={{range: [0, {seeds}]}}"
        wall, errors, packs = dd_sweep(SPEC, tmp / "cold", tmp / "cache", seed_axis)
        out["walls_s"]["dd"], out["test_error"]["dd"], out["packs_s"] = wall, errors, packs
        print(f"{seeds} seeds: dd {wall:.1f} s", flush=True)
    wall, errors = run_jax(bench.arrays(), widths, list(range(seeds)), epochs)
    out["walls_s"]["jax_minimal"], out["test_error"]["jax_minimal"] = wall, errors
    print(f"{seeds} seeds: jax_minimal {wall:.1f} s", flush=True)
    out["dd_over_jax"] = out["walls_s"]["dd"] / wall
    out["machine"] = f"{os.uname().sysname} {os.uname().machine}, {os.cpu_count()} CPUs"
    out["load_average"] = os.getloadavg()[0]
    print(f"dd / minimal JAX: {out['dd_over_jax']:.2f} (load {out['load_average']:.1f})")
    return out


def main(argv: list[str]) -> None:
    out = ROOT / "benchmarks" / "workload.json"
    if argv[:1] == ["--jax-only"]:
        report = dd_against_jax(int(argv[1]))
        (ROOT / "benchmarks" / "workload_jax.json").write_text(json.dumps(report, indent=1))
        return
    if argv == ["--report-only"]:  # redraw docs/bench.md's section from workload.json
        write_section(json.loads(out.read_text()))
        return
    seeds = [int(a) for a in argv] or [1]
    report = {
        "machine": f"{os.uname().sysname} {os.uname().machine}, {os.cpu_count()} CPUs",
        "matmul_peak": bench.matmul_peak(),
        "runs": [measure(s) for s in seeds],
    }
    report["load_average"] = os.getloadavg()[0]
    out.write_text(json.dumps(report, indent=1))
    write_section(report)


def write_section(report: dict) -> None:
    section = markdown(report)
    bench.write_section(section)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
