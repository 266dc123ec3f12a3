"""`make bench`, the workload users run: the default sweep (sweeps/mnist1d_mlp.yaml: 19
widths, 500 epochs) at SEEDS seeds, through `dd sweep` with an empty and with a primed
compilation cache, against an eager PyTorch loop over the same models, in one run on one
machine, with the FLOP floor from the matmul peak measured in the same run and the final
test errors width by width (equal work shows as equal errors within seed noise).

Run: python benchmarks/workload.py [SEEDS ...] (default: 1). Writes
benchmarks/workload.json and the "## The default sweep" section of docs/bench.md.
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

SPEC = ROOT / "sweeps" / "mnist1d_mlp.yaml"


def dd_sweep(folder: Path, seeds: int, cache: Path) -> tuple[float, dict[int, float]]:
    """`dd sweep` of the default spec at ``seeds`` seeds, as a user runs it; mean final test
    error per width."""
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dd",
            "sweep",
            str(SPEC),
            "--results",
            str(folder),
            "--compile-cache",
            str(cache),
            "--no-curves",
            "--quiet",
            "--set",
            f"grid.seed={{range: [0, {seeds}]}}",
        ],
        check=True,
    )
    wall = time.perf_counter() - start
    from dd.api import query

    table = query(
        "SELECT model_width AS w, avg(test_error) AS e FROM trials GROUP BY 1",
        "mnist1d_mlp",
        folder,
    )
    return wall, dict(zip(table["w"].to_pylist(), table["e"].to_pylist(), strict=True))


def measure(seeds: int) -> dict:
    spec = yaml.safe_load(SPEC.read_text())
    widths, epochs = spec["grid"]["model.width"], spec["train"]["epochs"]
    out = {"seeds": seeds, "widths": widths, "epochs": epochs, "walls_s": {}, "test_error": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, results, cache in (("dd", "cold", "cache"), ("dd_warm_cache", "warm", "cache")):
            wall, errors = dd_sweep(tmp / results, seeds, tmp / cache)
            out["walls_s"][name], out["test_error"][name] = wall, errors
            print(f"{seeds} seeds: {name} {wall:.1f} s", flush=True)
    wall, errors = bench.run_torch(bench.arrays(), widths, list(range(seeds)), epochs)
    out["walls_s"]["pytorch"], out["test_error"]["pytorch"] = wall, errors
    print(f"{seeds} seeds: pytorch {wall:.1f} s", flush=True)
    out["flops"] = seeds * sum(bench.train_flops(w, epochs) for w in widths)
    return out


def markdown(report: dict) -> str:
    run_seeds = " ".join(str(r["seeds"]) for r in report["runs"])
    lines = [
        "## The default sweep",
        "",
        f"Measured by `python benchmarks/workload.py {run_seeds}` "
        f"on {report['machine']} (1-minute load average {report['load_average']:.1f} at "
        f"the end): `dd sweep sweeps/mnist1d_mlp.yaml` (19 widths, 500 epochs) with an "
        "empty and with a primed compilation cache, against an eager PyTorch loop over the "
        f"same models. Matmul peak measured in the same run: "
        f"{report['matmul_peak'] / 1e9:.1f} GFLOP/s.",
        "",
        "| seeds | dd (s) | dd, warm cache (s) | PyTorch loop (s) | PyTorch / dd | "
        "FLOP floor (s) | dd / floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        w = r["walls_s"]
        floor = r["flops"] / report["matmul_peak"]
        lines.append(
            f"| {r['seeds']} | {w['dd']:.1f} | {w['dd_warm_cache']:.1f} | "
            f"{w['pytorch']:.1f} | {w['pytorch'] / w['dd']:.2f} | {floor:.1f} | "
            f"{w['dd'] / floor:.1f} |"
        )
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


def main(argv: list[str]) -> None:
    out = ROOT / "benchmarks" / "workload.json"
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
