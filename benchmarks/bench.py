"""`make bench`: the MNIST-1D MLP double-descent workload through dd, a PyTorch loop and
Ray Tune, in one run on one machine, plus the machine's matmul peak, orchestration overhead,
resume cost, pack-size and width scaling, and compile time (dd with an empty and with a
primed persistent compilation cache).

Every contender trains the same 40 -> H -> H -> 10 ReLU MLPs (sweeps/mnist1d_mlp.yaml cut
down: WIDTHS x SEEDS, EPOCHS epochs of SGD lr 0.01 momentum 0.9, batch 100, 15% label noise,
4000 training and 12000 test examples of the same MNIST-1D arrays) and reports its final
test error per width. Contenders alternate over REPEATS rounds; medians are reported.
Results go to benchmarks/results.json and docs/bench.md.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = [2, 4, 9, 19, 40, 85, 180, 300]
SEEDS = [0, 1]
EPOCHS = 20
BATCH, LR, MOMENTUM, NOISE = 100, 0.01, 0.9, 0.15
N_TRAIN, N_TEST = 4000, 12000
REPEATS = int(os.environ.get("DD_BENCH_REPEATS", "3"))
OVERHEAD_TRIALS = int(os.environ.get("DD_BENCH_OVERHEAD_TRIALS", "1000"))
# Ray Tune starts a worker per trial here (seconds each), so 1000 no-op trials would take
# most of an hour: it runs fewer, and the per-trial figure is what is compared.
TUNE_OVERHEAD_TRIALS = int(os.environ.get("DD_BENCH_TUNE_OVERHEAD_TRIALS", "50"))

SPEC = {
    "name": "bench_mlp",
    "data": {
        "name": "mnist1d",
        "n_train": N_TRAIN,
        "train_pool": N_TRAIN,
        "n_test": N_TEST,
        "label_noise": NOISE,
    },
    "model": {"name": "mlp", "depth": 2, "width": 2},
    "train": {
        "optimizer": "sgd",
        "lr": LR,
        "momentum": MOMENTUM,
        "batch_size": BATCH,
        "epochs": EPOCHS,
        "eval_points": 1,
    },
    "grid": {"model.width": WIDTHS, "seed": SEEDS},
    "resources": {"cpus": 2},
}


# --------------------------------------------------------------------------- shared data


def dd_command(*args: str | Path) -> list[str]:
    """`python -m dd ARGS` with this interpreter: dd as a user runs it, in a fresh process
    that starts its own local Ray (every benchmark script here runs dd this way)."""
    return [sys.executable, "-m", "dd", *map(str, args)]


def arrays() -> dict[str, np.ndarray]:
    """The MNIST-1D arrays dd uses (its generator and cache), for the peers."""
    from dd.datasets.mnist1d import Mnist1dData
    from dd.engine.data import load_dataset

    d = load_dataset(Mnist1dData(n_train=N_TRAIN, train_pool=N_TRAIN, n_test=N_TEST))
    return {
        "x": d.x_pool.astype(np.float32),
        "y": d.y_pool.astype(np.int64),
        "x_test": d.x_test.astype(np.float32),
        "y_test": d.y_test.astype(np.int64),
    }


def noisy(y: np.ndarray, seed: int) -> np.ndarray:
    """15% of the labels moved to a random other class (the peers' own draw)."""
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y)) < NOISE
    return np.where(flip, (y + rng.integers(1, 10, len(y))) % 10, y)


def model_epochs() -> int:
    return len(WIDTHS) * len(SEEDS) * EPOCHS


def train_flops(width: int, epochs: int = EPOCHS) -> float:
    """Forward + backward FLOPs of ``epochs`` epochs of one model: 3 x 2 x multiply-adds per
    example (the backward pass costs twice the forward), plus one forward pass over train and
    test."""
    macs = 40 * width + width * width + width * 10
    per_epoch = 6 * macs * N_TRAIN
    final_eval = 2 * macs * (N_TRAIN + N_TEST)
    return per_epoch * epochs + final_eval


# --------------------------------------------------------------------------- contenders


def run_dd(results: Path, compile_cache: Path) -> tuple[float, dict[int, float]]:
    """`dd sweep` on the spec, as a user runs it (a fresh process and local Ray), with its
    workers' persistent compilation cache in ``compile_cache`` (empty: every program
    compiles; primed: every program loads)."""
    results.mkdir(parents=True, exist_ok=True)
    spec_path = results / "bench_mlp.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    start = time.perf_counter()
    subprocess.run(
        dd_command(
            "sweep",
            spec_path,
            "--results",
            results,
            "--compile-cache",
            compile_cache,
            "--no-curves",
            "--quiet",
        ),
        check=True,
    )
    wall = time.perf_counter() - start
    from dd.api import query

    table = query(
        "SELECT model_width AS w, avg(test_error) AS e FROM trials GROUP BY 1", "bench_mlp", results
    )
    return wall, dict(zip(table["w"].to_pylist(), table["e"].to_pylist(), strict=True))


def run_torch(
    data: dict, widths: list[int] = WIDTHS, seeds: list[int] = SEEDS, epochs: int = EPOCHS
) -> tuple[float, dict[int, float]]:
    """One width and one seed at a time, eager PyTorch on the CPU."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    x, x_test = torch.from_numpy(data["x"]), torch.from_numpy(data["x_test"])
    y_test = torch.from_numpy(data["y_test"])
    errors: dict[int, list[float]] = {}
    start = time.perf_counter()
    for width in widths:
        for seed in seeds:
            torch.manual_seed(seed)
            y = torch.from_numpy(noisy(data["y"], seed))
            model = torch.nn.Sequential(
                torch.nn.Linear(40, width),
                torch.nn.ReLU(),
                torch.nn.Linear(width, width),
                torch.nn.ReLU(),
                torch.nn.Linear(width, 10),
            )
            opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
            loss_fn = torch.nn.CrossEntropyLoss()
            for _ in range(epochs):
                order = torch.randperm(N_TRAIN)
                for i in range(N_TRAIN // BATCH):
                    rows = order[i * BATCH : (i + 1) * BATCH]
                    opt.zero_grad()
                    loss_fn(model(x[rows]), y[rows]).backward()
                    opt.step()
            with torch.no_grad():
                wrong = (model(x_test).argmax(1) != y_test).float().mean().item()
            errors.setdefault(width, []).append(wrong)
    wall = time.perf_counter() - start
    return wall, {w: float(np.mean(e)) for w, e in errors.items()}


def _tune_trainable(config: dict, data: dict) -> None:
    """What a Ray Tune user writes: a Flax model, an Optax optimizer, a jitted step and a
    Python loop over epochs and batches; one trial per (width, seed)."""
    import jax
    import jax.numpy as jnp
    import optax
    from ray import tune

    from dd.models.mlp import MLP

    x, x_test, y_test = data["x"], data["x_test"], data["y_test"]
    y = noisy(data["y"], config["seed"])
    model = MLP(width=config["width"], depth=2, n_classes=10)
    params = model.init(jax.random.PRNGKey(config["seed"]), x[:1])["params"]
    opt = optax.sgd(LR, momentum=MOMENTUM)
    state = opt.init(params)

    @jax.jit
    def step(params, state, xb, yb):
        def loss(p):
            return optax.softmax_cross_entropy_with_integer_labels(
                model.apply({"params": p}, xb), yb
            ).mean()

        grads = jax.grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    rng = np.random.default_rng(config["seed"])
    for _ in range(config["epochs"]):
        order = rng.permutation(N_TRAIN)
        for i in range(N_TRAIN // BATCH):
            rows = order[i * BATCH : (i + 1) * BATCH]
            params, state = step(params, state, x[rows], y[rows])
    logits = model.apply({"params": params}, x_test)
    tune.report({"test_error": float(jnp.mean(jnp.argmax(logits, -1) != y_test))})


def _ray_local() -> None:
    """A fresh local Ray whose workers can import this file's functions."""
    import ray

    path = os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")]))
    ray.init(
        address="local",
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )


def run_tune(
    data: dict,
    storage: Path,
    widths: list[int] = WIDTHS,
    seeds: list[int] = SEEDS,
    epochs: int = EPOCHS,
) -> tuple[float, dict[int, float]]:
    import ray
    from ray import tune

    start = time.perf_counter()
    _ray_local()
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_tune_trainable, data=data), {"cpu": 1}),
            param_space={
                "width": tune.grid_search(widths),
                "seed": tune.grid_search(seeds),
                "epochs": epochs,
            },
            run_config=tune.RunConfig(storage_path=str(storage), verbose=0),
        )
        grid = tuner.fit()
        wall = time.perf_counter() - start
        errors: dict[int, list[float]] = {}
        for result in grid:
            errors.setdefault(result.config["width"], []).append(result.metrics["test_error"])
    finally:
        ray.shutdown()
    return wall, {w: float(np.mean(e)) for w, e in errors.items()}


# --------------------------------------------------------------------------- machine limits


def matmul_peak() -> float:
    """FLOP/s of a large float32 matmul under jit (best of several)."""
    import jax
    import jax.numpy as jnp

    n = 2048
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def pack_throughput(width: int, replicas: int, epochs: int = 5) -> dict:
    """dd's engine alone (no Ray): model-epochs/s of one pack, and its compile seconds
    (first call minus the second, which reuses the compiled program)."""
    from dd.engine.train import train_pack
    from dd.plan.packs import pack_key
    from dd.plan.sweep import parse_spec

    spec = parse_spec(
        {
            **SPEC,
            "train": {**SPEC["train"], "epochs": epochs},
            "grid": {"seed": list(range(replicas))},
            "model": {**SPEC["model"], "width": width},
        }
    )
    trials = list(spec.trials)
    key = pack_key(trials[0])
    t = time.perf_counter()
    train_pack(trials, key)
    first = time.perf_counter() - t
    t = time.perf_counter()
    train_pack(trials, key)
    second = time.perf_counter() - t
    flops = (
        (train_flops(width) - 2 * (40 * width + width * width + width * 10) * (N_TRAIN + N_TEST))
        / EPOCHS
        * epochs
        * replicas
    )
    return {
        "width": width,
        "replicas": replicas,
        "epochs": epochs,
        "model_epochs_per_s": replicas * epochs / second,
        "seconds": second,
        "compile_s": max(first - second, 0.0),
        "flop_per_s": flops / second,
    }


def dd_overhead(results: Path, n: int) -> dict:
    """n trivially small closed-form trials through `dd sweep`, then the same command again."""
    spec = {
        "name": "bench_overhead",
        "data": {"name": "gaussian", "dim": 4, "n_train": 4, "n_test": 8},
        "model": {"name": "raw_features", "n_features": 2},
        "grid": {"seed": {"range": [0, n]}},
    }
    path = results / "overhead.yaml"
    path.write_text(yaml.safe_dump(spec))
    command = dd_command("sweep", path, "--results", results, "--no-curves", "--quiet")
    t = time.perf_counter()
    subprocess.run(command, check=True)
    sweep = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run(command, check=True)
    resume = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import dd.cli"], check=True)
    startup = time.perf_counter() - t
    return {
        "trials": n,
        "sweep_s": sweep,
        "per_trial_s": sweep / n,
        "resume_s": resume,
        "python_import_s": startup,
    }


def _noop(config: dict) -> None:
    from ray import tune

    tune.report({"value": config["i"]})


def tune_overhead(storage: Path, n: int) -> dict:
    import ray
    from ray import tune

    t = time.perf_counter()
    _ray_local()
    try:
        tune.Tuner(
            _noop,
            param_space={"i": tune.grid_search(list(range(n)))},
            run_config=tune.RunConfig(storage_path=str(storage), verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    wall = time.perf_counter() - t
    return {"trials": n, "sweep_s": wall, "per_trial_s": wall / n}


# --------------------------------------------------------------------------- report


def main() -> None:
    out_json = ROOT / "benchmarks" / "results.json"
    data = arrays()
    walls: dict[str, list[float]] = {"dd": [], "dd_warm_cache": [], "pytorch": [], "ray_tune": []}
    errors: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("priming a compilation cache for dd_warm_cache", flush=True)
        run_dd(tmp / "dd_prime", tmp / "cache_warm")
        for r in range(REPEATS):
            for name in walls:
                print(f"round {r + 1}/{REPEATS}: {name}", flush=True)
                if name == "dd":  # a fresh, empty cache: every program compiles
                    wall, err = run_dd(tmp / f"dd_{r}", tmp / f"cache_cold_{r}")
                elif name == "dd_warm_cache":
                    wall, err = run_dd(tmp / f"dd_warm_{r}", tmp / "cache_warm")
                elif name == "pytorch":
                    wall, err = run_torch(data)
                else:
                    wall, err = run_tune(data, tmp / f"tune_{r}")
                walls[name].append(wall)
                errors[name] = err
                print(f"  {wall:.1f} s", flush=True)
        print("matmul peak, pack scaling", flush=True)
        peak = matmul_peak()
        scaling_replicas = [pack_throughput(85, k) for k in (1, 4, 16, 64)]
        scaling_width = [pack_throughput(w, len(SEEDS) * 8) for w in WIDTHS]
        print("overheads", flush=True)
        overhead_dd = dd_overhead(tmp, OVERHEAD_TRIALS)
        overhead_tune = tune_overhead(tmp / "tune_overhead", TUNE_OVERHEAD_TRIALS)
    flops = sum(train_flops(w) for w in WIDTHS) * len(SEEDS)
    median = {k: statistics.median(v) for k, v in walls.items()}
    report = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "workload": {
            "widths": WIDTHS,
            "seeds": SEEDS,
            "epochs": EPOCHS,
            "model_epochs": model_epochs(),
            "flops": flops,
        },
        "walls_s": walls,
        "median_s": median,
        "model_epochs_per_s": {k: model_epochs() / v for k, v in median.items()},
        "ratio_to_dd": {k: v / median["dd"] for k, v in median.items()},
        "test_error": errors,
        "matmul_peak_flop_per_s": peak,
        "flop_limit_s": flops / peak,
        "dd_over_flop_limit": median["dd"] / (flops / peak),
        "scaling_replicas": scaling_replicas,
        "scaling_width": scaling_width,
        "fraction_of_peak_by_width": {s["width"]: s["flop_per_s"] / peak for s in scaling_width},
        "overhead": {"dd": overhead_dd, "ray_tune": overhead_tune},
    }
    out_json.write_text(json.dumps(report, indent=1))
    write_section(markdown(report))
    print(markdown(report))


SECTIONS = (  # in page order
    "Targets",
    "dd against the minimal JAX program",
    "The default sweep",
    "The CNN workload",
    "Start-up",
    "Where the default sweep's time went (pack profiles)",
    "A pack's fixed cost (dd 0.4 against dd 0.3)",
    "Warm workers",
    "Warm instance (dd up)",
    "Compile",
    "The 20-epoch cut",
    "Planning at scale",
    "Merged pack files",
    "Step loops",
    "Replica map",
    "Block packs",
    "GPU",
    "Conv padding",
    "ETA",
    "Refinement",
)
BENCH_MD = ROOT / "docs" / "bench.md"
HEAD = """# Benchmarks: `make bench`

Every section is written by the script it names, from what that script measured in one run
on one machine (raw numbers in benchmarks/*.json); "Targets" gathers the figures the
project's performance issue set, each against its target.
"""


def _sections(text: str) -> dict[str, str]:
    """docs/bench.md's sections by title (text outside SECTIONS is dropped)."""
    sections = {}
    for part in re.split(r"\n(?=## )", text):
        title = part[3:].split("\n", 1)[0] if part.startswith("## ") else None
        if title in SECTIONS:
            sections[title] = part.strip("\n") + "\n"
    return sections


def write_section(text: str, path: Path = BENCH_MD) -> None:
    """Write one section of docs/bench.md, keeping the others: ``text``'s first line is
    "## <one of SECTIONS>"."""
    title = text[3:].split("\n", 1)[0] if text.startswith("## ") else None
    if title not in SECTIONS:
        raise ValueError(f"not a docs/bench.md section: {text.splitlines()[0]!r}")
    sections = _sections(path.read_text() if path.exists() else "")
    sections[title] = text.strip("\n") + "\n"
    path.write_text("\n".join([HEAD] + [sections[t] for t in SECTIONS if t in sections]))


def measure_and_write(argv: list[str], name: str, measure, markdown) -> None:
    """A section script's main: measure (or, with --report-only, reread) benchmarks/NAME.json,
    then write its docs/bench.md section from it."""
    path = ROOT / "benchmarks" / f"{name}.json"
    if argv == ["--report-only"]:
        report = json.loads(path.read_text())
    else:
        report = measure()
        path.write_text(json.dumps(report, indent=1))
    section = markdown(report)
    write_section(section)
    print(section)


def markdown(r: dict) -> str:
    """The docs table, from the measured report only."""
    m = r["machine"]
    lines = [
        "## The 20-epoch cut",
        "",
        "The fixed-cost benchmark: a short cut of the default sweep, where start-up and "
        "compiling weigh most. "
        f"Measured by `python benchmarks/bench.py` on {m['platform']}, {m['cpus']} CPUs, "
        f"Python {m['python']}."
        f" Workload: {len(r['workload']['widths'])} widths x {len(r['workload']['seeds'])} "
        f"seeds x {r['workload']['epochs']} epochs of the MNIST-1D MLP "
        f"({r['workload']['model_epochs']} model-epochs, "
        f"{r['workload']['flops'] / 1e12:.2f} TFLOP forward + backward). Median of "
        f"{len(r['walls_s']['dd'])} alternating rounds. Raw numbers: benchmarks/results.json.",
        "",
        "| contender | wall (s), median | model-epochs/s | time / dd's |",
        "|---|---|---|---|",
    ]
    for name, wall in r["median_s"].items():
        lines.append(
            f"| {name} | {wall:.1f} | {r['model_epochs_per_s'][name]:.1f} | "
            f"{r['ratio_to_dd'][name]:.2f} |"
        )
    widths = r["workload"]["widths"]
    lines += [
        "",
        "Final test error per width (mean over seeds; equal work shows as equal "
        "errors within seed noise):",
        "",
        "| contender | " + " | ".join(str(w) for w in widths) + " |",
        "|---|" + "---|" * len(widths),
    ]
    for name, err in r["test_error"].items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{err[w] if w in err else err[str(w)]:.3f}" for w in widths)
            + " |"
        )
    lines += [
        "",
        f"Matmul peak (2048^2 float32, jit): {r['matmul_peak_flop_per_s'] / 1e9:.1f} "
        f"GFLOP/s. FLOP limit of the workload: {r['flop_limit_s']:.2f} s; dd's wall is "
        f"{r['dd_over_flop_limit']:.1f}x that.",
        "",
        "dd's engine alone (no Ray, compiled program reused), 5 epochs:",
        "",
        "| width | replicas | model-epochs/s | fraction of matmul peak | compile (s) |",
        "|---|---|---|---|---|",
    ]
    for s in r["scaling_replicas"] + r["scaling_width"]:
        lines.append(
            f"| {s['width']} | {s['replicas']} | {s['model_epochs_per_s']:.1f} | "
            f"{s['flop_per_s'] / r['matmul_peak_flop_per_s']:.3f} | "
            f"{s['compile_s']:.2f} |"
        )
    o = r["overhead"]
    lines += [
        "",
        f"Orchestration: {o['dd']['trials']} trivially small trials through `dd sweep` "
        f"took {o['dd']['sweep_s']:.1f} s ({1000 * o['dd']['per_trial_s']:.1f} ms per trial, "
        f"Python start-up and Ray start included); {o['ray_tune']['trials']} no-op trials "
        f"through Ray Tune took {o['ray_tune']['sweep_s']:.1f} s "
        f"({1000 * o['ray_tune']['per_trial_s']:.1f} ms per trial). Re-running the "
        f"finished {o['dd']['trials']}-trial dd sweep (nothing to do): "
        f"{o['dd']['resume_s']:.2f} s.",
        "",
        "Compile: `dd` runs each round with an empty persistent compilation cache, so "
        "every program compiles; `dd_warm_cache` with one primed by an earlier run of "
        "the same sweep, so every program loads. Their difference, "
        f"{r['median_s']['dd'] - r['median_s']['dd_warm_cache']:.1f} s, is the "
        "sweep's compile time beyond loading.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--report-only"]:  # redraw docs/bench.md from results.json
        write_section(markdown(json.loads((ROOT / "benchmarks" / "results.json").read_text())))
    else:
        main()
