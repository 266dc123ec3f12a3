"""`make bench`, GPU section: dd's training engine on an accelerator, measured.

For the MNIST-1D MLP, Nakkiran's 5-layer CNN and PreActResNet18 (CIFAR-10-shaped synthetic
batches: random uint8 images, no download), widths k in WIDTHS, packs of PACK_SIZES
replicas and each precision, it times the pack's compiled training loop (one epoch of
STEPS batches, on device, after a compiling run) and reports seconds per step and the
achieved FLOP/s as a fraction of the bf16 matrix peak measured in the same run. FLOPs per
step are 3x the forward pass's, counted by XLA's cost analysis of one forward batch. The
same replicas one after another take R times the single-replica step (dd's sequential
mode runs exactly that program R times), so the vmapped pack's gain per replica is
R t(1) / t(R).

It then estimates the GPU-hours of sweeps/nakkiran_cnn_cifar10.yaml from these measured
rates, and (``--sweep``) runs the default MNIST-1D sweep end to end on the GPU.

Run: python benchmarks/gpu.py [--out FILE] [--sweep]; --tiny runs every code path at toy
sizes on any backend (the test suite does); --report-only redraws the markdown from a JSON.
Without a GPU and without --tiny it prints one line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import dd_command  # noqa: E402  (the benchmarks' one way to run dd)

FAMILIES = ("mlp", "cnn", "resnet18")
WIDTHS = (4, 16, 64)
PACK_SIZES = (1, 4, 16)
PRECISIONS = ("float32", "tf32", "bf16")
BATCH, STEPS, REPEATS = 128, 20, 3
NAKKIRAN_SPEC = ROOT / "sweeps" / "nakkiran_cnn_cifar10.yaml"


def device_info() -> dict:
    import jax

    device = jax.devices()[0]
    return {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "jax": jax.__version__,
        "devices": len(jax.devices()),
    }


def _best_time(fn, repeats: int) -> float:
    fn()  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peaks(n: int) -> dict[str, float]:
    """FLOP/s of an n x n x n matrix product at each precision (random inputs)."""
    import jax
    import jax.numpy as jnp

    from dd.models.precision import matmul_precision

    out = {}
    for precision in PRECISIONS:
        dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
        a = jax.random.normal(jax.random.key(0), (n, n), dtype)
        b = jax.random.normal(jax.random.key(1), (n, n), dtype)

        def product(a, b, precision=precision):
            with matmul_precision(precision):
                return a @ b

        f = jax.jit(product)
        seconds = _best_time(lambda f=f, a=a, b=b: f(a, b).block_until_ready(), 5)
        out[precision] = 2 * n**3 / seconds
    return out


def _trial(family: str, width: int, precision: str):
    from dd.datasets.images import ImageData
    from dd.datasets.mnist1d import Mnist1dData
    from dd.models import registry as models
    from dd.spec.config import Model, Train, Trial
    from dd.spec.fields import build

    models.load()  # the model kinds, by name

    model = {
        "mlp": {"name": "mlp", "width": width, "depth": 2},
        "cnn": {"name": "cnn", "width": width},
        "resnet18": {"name": "resnet18", "width": width},
    }[family]
    data = (
        Mnist1dData(n_train=BATCH, train_pool=BATCH * STEPS, n_test=100)
        if family == "mlp"
        else ImageData(name="cifar10", n_train=BATCH, n_test=100)
    )
    return Trial(
        data=data,
        model=build(Model, model, "model"),
        train=Train(optimizer="adam", lr=1e-4, batch_size=BATCH, epochs=1, precision=precision),
    )


def _synthetic(trial, n_pool: int):
    """A Dataset of the trial's input shape: random uint8 images or float rows, 10 classes."""
    from dd.datasets.base import Dataset

    rng = np.random.default_rng(0)
    shape = trial.data.input_shape
    if len(shape) == 3:
        x, x_test = (rng.integers(0, 256, (n,) + shape, np.uint8) for n in (n_pool, 100))
        scaled = x.reshape(-1, shape[-1]) / 255.0
        extra = {
            "x_mean": scaled.mean(0).astype(np.float32),
            "x_std": scaled.std(0).astype(np.float32),
        }
    else:
        x, x_test = (rng.standard_normal((n,) + shape).astype(np.float32) for n in (n_pool, 100))
        extra = {}
    y, y_test = (rng.integers(0, 10, n).astype(np.int32) for n in (n_pool, 100))
    return Dataset(x, y, x_test, y_test, 10, **extra)


def forward_flops(trial) -> float | None:
    """FLOPs of one forward pass over a batch of BATCH examples: XLA's cost analysis of the
    lowered program (after compilation a GPU's convolutions are cuDNN calls it cannot count).
    None where the backend gives no analysis (JAX's GPU backend); ``--report-only`` on a CPU
    fills those in."""
    import jax
    import jax.numpy as jnp

    from dd.models.registry import make_model

    model = make_model(trial)
    x = jnp.zeros((BATCH,) + trial.data.input_shape, jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x[:1], train=False))
    cost = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x).cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"]) if cost else None


def step_time(family: str, width: int, replicas: int, precision: str) -> dict:
    """Seconds per training step of a vmapped pack of ``replicas``, on device."""
    import jax
    import jax.numpy as jnp

    from dd.engine.device_data import draw_setups, to_device
    from dd.engine.step import Program, init_replicas, train_epochs_on_device

    trial = _trial(family, width, precision)
    dataset = _synthetic(trial, BATCH * STEPS)
    program = Program(trial=trial, n_rows=BATCH * STEPS, n_classes=10, augment=False)
    data = to_device(dataset, trial.data, 100)
    r = replicas
    setups = draw_setups(
        data,
        jnp.arange(r, dtype=jnp.uint32),
        jnp.full(r, BATCH * STEPS),
        jnp.zeros(r),
        jnp.full(r, 1e-4),
        jnp.zeros(r),
        n_rows=BATCH * STEPS,
    )
    state = {"replicas": init_replicas(program, data, setups, jnp.full(r, width))}

    def run():
        state["replicas"] = train_epochs_on_device(
            program, data, setups, state["replicas"], np.int32(0), np.int32(1)
        )
        jax.block_until_ready(state["replicas"])

    start = time.perf_counter()
    run()
    compile_s = time.perf_counter() - start
    seconds = _best_time(run, REPEATS) / STEPS
    row = {
        "family": family,
        "width": width,
        "replicas": replicas,
        "precision": precision,
        "step_s": seconds,
        "first_run_s": compile_s,
    }
    return count_flops(row)


def count_flops(row: dict) -> dict:
    """Add the step's FLOPs and rate to a measured row, where this backend can count them."""
    forward = forward_flops(_trial(row["family"], row["width"], row["precision"]))
    if forward is not None:
        row["flop_per_step"] = 3 * forward * row["replicas"]
        row["flop_per_s"] = row["flop_per_step"] / row["step_s"]
    return row


def measure_engine(
    families, widths, pack_sizes, precisions, rows: list[dict], save=lambda: None
) -> list[dict]:
    """Every pack size at the fastest precision (bf16), and every other precision at 4
    replicas; each row is appended to ``rows`` (and ``save``d) as soon as it is measured."""
    for family in families:
        for width in widths:
            configs = [(r, "bf16") for r in pack_sizes]
            configs += [(min(4, max(pack_sizes)), p) for p in precisions if p != "bf16"]
            for replicas, precision in configs:
                rows.append(step_time(family, width, replicas, precision))
                print(_line(rows[-1]), flush=True)
                save()
    return rows


def _line(row: dict) -> str:
    rate = f"{row['flop_per_s'] / 1e12:7.1f} TFLOP/s" if "flop_per_s" in row else ""
    return (
        f"{row['family']:9s} k={row['width']:3d} R={row['replicas']:2d} "
        f"{row['precision']:8s} {1e3 * row['step_s']:8.2f} ms/step {rate} "
        f"(first run {row['first_run_s']:.1f} s)"
    )


def nakkiran_estimate(rows: list[dict], precision: str = "bf16") -> dict | None:
    """GPU-hours of sweeps/nakkiran_cnn_cifar10.yaml from the CNN rates measured here.

    Each trial's steps (epochs x floor(n_train / batch)) at its padded program width cost
    the forward FLOPs x 3; the rate at that width is interpolated in log width between the
    measured widths (at each, the best of its pack sizes: dd's execution plan runs a pack
    vmapped or one replica at a time, whichever measured faster) at ``precision``.
    """
    from dd.models.registry import program_trial
    from dd.plan.sweep import load_spec

    best: dict[int, float] = {}  # per width, the faster of a vmapped pack and one at a time
    for r in rows:
        if r["family"] == "cnn" and r["precision"] == precision and "flop_per_s" in r:
            best[r["width"]] = max(best.get(r["width"], 0.0), r["flop_per_s"])
    measured = sorted(best.items())
    if not measured or not NAKKIRAN_SPEC.exists():
        return None
    spec = load_spec(NAKKIRAN_SPEC)
    widths, rates = np.log([w for w, _ in measured]), np.log([r for _, r in measured])
    flops_cache: dict[int, float] = {}
    seconds = 0.0
    for trial in spec.trials:
        program = program_trial(trial)
        k = program.model.width
        if k not in flops_cache:
            flops_cache[k] = 3 * forward_flops(_trial("cnn", k, precision)) / BATCH
        steps = trial.train.epochs * (trial.data.n_train // trial.train.batch_size)
        rate = math.exp(np.interp(math.log(k), widths, rates))
        seconds += steps * trial.train.batch_size * flops_cache[k] / rate
    return {
        "spec": NAKKIRAN_SPEC.name,
        "trials": len(spec.trials),
        "precision": precision,
        "gpu_hours": seconds / 3600,
    }


DETERMINISM_SCRIPT = """
import json, sys, time
from dd.plan.packs import make_packs
from dd.plan.sweep import parse_spec
from dd.engine.train import train_pack
spec = parse_spec(json.loads(sys.argv[1]))
(pack,) = make_packs(list(spec.trials), spec.resources)
start = time.perf_counter()
rows = train_pack(list(pack.trials), pack.key)
print("RESULT", json.dumps({"rows": rows, "seconds": time.perf_counter() - start}))
"""


def determinism(epochs: int, n_train: int) -> dict:
    """A CIFAR-shaped CNN pack (k = 16, 2 replicas, synthetic images written as CIFAR files)
    trained twice in fresh processes, with and without XLA's deterministic GPU operations
    (``resources.deterministic``): are the two runs' numbers identical, and at what cost?"""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        _write_cifar(Path(tmp), n_train)
        spec = {
            "name": "det",
            "data": {
                "name": "cifar10",
                "n_train": n_train,
                "n_test": 100,
                "data_dir": tmp,
                "label_noise": 0.2,
            },
            "model": {"name": "cnn", "width": 16},
            "train": {
                "optimizer": "adam",
                "lr": 1e-3,
                "batch_size": 64,
                "epochs": epochs,
                "eval_points": 1,
            },
            "grid": {"seed": [0, 1]},
        }
        for deterministic in (False, True):
            flags = os.environ.get("XLA_FLAGS", "")
            env = {
                **os.environ,
                "XLA_FLAGS": f"{flags} --xla_gpu_deterministic_ops=true"
                if deterministic
                else flags,
            }
            runs = []
            for _ in range(2):
                done = subprocess.run(
                    [sys.executable, "-c", DETERMINISM_SCRIPT, json.dumps(spec)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs.append(json.loads(done.stdout.split("RESULT ", 1)[1]))
            key = "deterministic" if deterministic else "default"
            out[key] = {
                "identical": runs[0]["rows"] == runs[1]["rows"],
                "seconds": [r["seconds"] for r in runs],
                "train_loss": [r["rows"][0][-1]["train_loss"] for r in runs],
            }
    return out


def _write_cifar(folder: Path, n_train: int) -> None:
    """Random images in the CIFAR-10 python-batch format (dd.datasets.image_files reads them)."""
    import pickle

    rng = np.random.default_rng(0)
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    per = -(-n_train // 5)
    for name, n in [(f"data_batch_{i}", per) for i in range(1, 6)] + [("test_batch", 100)]:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), np.uint8),
            b"labels": rng.integers(0, 10, n).tolist(),
        }
        (batches / name).write_bytes(pickle.dumps(batch))


def default_sweep_on_gpu(results: Path) -> dict:
    """`dd sweep` of sweeps/mnist1d_mlp.yaml with its packs on the GPU (four share it)."""
    import yaml

    spec = yaml.safe_load((ROOT / "sweeps" / "mnist1d_mlp.yaml").read_text())
    spec |= {"name": "mnist1d_mlp_gpu", "resources": {"cpus": 1, "gpus": 0.25}}
    path = results / "mnist1d_mlp_gpu.yaml"
    results.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    start = time.perf_counter()
    done = subprocess.run(
        dd_command("sweep", path, "--results", results, "--compile-cache", "off"),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "returncode": done.returncode,
        "output": (done.stdout + done.stderr)[-3000:],
    }


def targets(report: dict) -> list[str]:
    """The issue's GPU targets against what this report measured."""
    rows, peak = report["engine"], (report.get("matmul_peaks") or {}).get("bf16")
    out = ["Targets:"]
    wide = [
        r["flop_per_s"]
        for r in rows
        if r["family"] == "cnn" and r["width"] == 64 and "flop_per_s" in r
    ]
    if wide and peak:
        share = max(wide) / peak
        out.append(
            f"- the k = 64 CNN at >= 35% of the bf16 peak: best {share:.1%} "
            + ("(met)" if share >= 0.35 else "(missed)")
        )
    single = {
        (r["family"], r["width"], r.get("run")): r["step_s"]
        for r in rows
        if r["replicas"] == 1 and r["precision"] == "bf16"
    }
    gains = [
        r["replicas"] * single[(r["family"], r["width"], r.get("run"))] / r["step_s"]
        for r in rows
        if r["family"] == "cnn"
        and r["width"] <= 8
        and r["replicas"] > 1
        and r["precision"] == "bf16"
        and (r["family"], r["width"], r.get("run")) in single
    ]
    if gains:
        out.append(
            f"- narrow CNNs (k <= 8) packed >= 4x faster per replica than one at a time: "
            f"best {max(gains):.2f}x " + ("(met)" if max(gains) >= 4 else "(missed)")
        )
    estimate = report.get("nakkiran_estimate")
    if estimate:
        hours = estimate["gpu_hours"]
        out.append(
            f"- the Nakkiran CNN figure in <= 15 GPU-hours: {hours:.1f} "
            + ("(met)" if hours <= 15 else "(missed)")
        )
    return out


def markdown(report: dict) -> str:
    d = report["device"]
    peaks = report.get("matmul_peaks") or {"bf16": float("nan")}
    lines = [
        "## GPU",
        "",
        f"Measured by `python benchmarks/gpu.py` on {d['device_kind']} (JAX {d['jax']}).",
        "Matrix-product peaks measured in the same run: "
        + ", ".join(f"{p} {v / 1e12:.1f} TFLOP/s" for p, v in peaks.items())
        + ".",
        f"Step: one Adam step of a vmapped pack, batch {BATCH}, inside the pack's on-device loop "
        f"({STEPS} steps timed, median of {REPEATS}). Sequential: the same replicas one after "
        "another (R x the one-replica step).",
        "",
        "| family | k | replicas | precision | ms/step | TFLOP/s | of bf16 peak | "
        "gain per replica vs sequential | run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    single = {
        (r["family"], r["width"], r["precision"], r.get("run")): r["step_s"]
        for r in report["engine"]
        if r["replicas"] == 1
    }
    for r in report["engine"]:
        one = single.get((r["family"], r["width"], r["precision"], r.get("run")))
        gain = f"{r['replicas'] * one / r['step_s']:.2f}x" if one and r["replicas"] > 1 else ""
        rate = r.get("flop_per_s", float("nan"))
        lines.append(
            f"| {r['family']} | {r['width']} | {r['replicas']} | {r['precision']} | "
            f"{1e3 * r['step_s']:.2f} | {rate / 1e12:.1f} | "
            f"{rate / peaks['bf16']:.1%} | {gain} | {r.get('run', '')} |"
        )
    lines += ["", *targets(report)]
    det = report.get("determinism")
    if det:
        lines += [
            "",
            "Determinism (a CIFAR-shaped CNN pack trained twice in fresh processes): "
            + "; ".join(
                f"{k}: identical numbers {v['identical']}, {min(v['seconds']):.1f} s"
                for k, v in det.items()
            )
            + ".",
        ]
    estimate = report.get("nakkiran_estimate")
    if estimate:
        lines += [
            "",
            f"Estimated cost of `sweeps/{estimate['spec']}` ({estimate['trials']} "
            f"trials, {estimate['precision']}) from the CNN rates above: "
            f"{estimate['gpu_hours']:.1f} GPU-hours on this device.",
        ]
    for key in ("default_sweep", "default_sweep_final"):
        sweep = report.get(key)
        if not sweep:
            continue
        lines += [
            "",
            f"`dd sweep sweeps/mnist1d_mlp.yaml` with its packs on this GPU (four "
            f"packs share it, resources.gpus 0.25): {sweep['wall_s']:.0f} s end to end "
            f"(exit {sweep['returncode']})"
            + "".join(
                f"; {line}"
                for line in sweep["output"].splitlines()
                if line.startswith("model_wise:")
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def run(
    out: Path,
    *,
    tiny: bool,
    sweep: bool,
    configs: list[str] | None = None,
    check_determinism: bool = False,
) -> dict:
    """Measure everything, writing the report to ``out`` after every step (a run cut short
    keeps what it measured)."""
    report = {"device": device_info(), "tiny": tiny, "engine": []}

    def save():
        out.write_text(json.dumps(report, indent=1))

    if sweep:
        with tempfile.TemporaryDirectory() as tmp:
            report["default_sweep"] = default_sweep_on_gpu(Path(tmp))
        print(f"default sweep: {report['default_sweep']['wall_s']:.1f} s", flush=True)
        save()
    if check_determinism:
        report["determinism"] = determinism(1, 64) if tiny else determinism(2, 1024)
        print(f"determinism: {report['determinism']}", flush=True)
        save()
    if tiny:
        global BATCH, STEPS, REPEATS
        BATCH, STEPS, REPEATS = 8, 2, 1
        report["matmul_peaks"] = matmul_peaks(256)
        measure_engine(("mlp", "cnn"), (2,), (1, 2), ("float32", "bf16"), report["engine"])
    elif configs:
        report["matmul_peaks"] = matmul_peaks(8192)
        for config in configs:
            family, width, replicas, precision = config.split(":")
            report["engine"].append(step_time(family, int(width), int(replicas), precision))
            print(_line(report["engine"][-1]), flush=True)
            save()
    else:
        report["matmul_peaks"] = matmul_peaks(8192)
        save()
        measure_engine(FAMILIES, WIDTHS, PACK_SIZES, PRECISIONS, report["engine"], save)
    report["nakkiran_estimate"] = nakkiran_estimate(report["engine"])
    save()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "gpu_results.json"))
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--determinism",
        action="store_true",
        help="train a CNN pack twice with and without deterministic GPU ops",
    )
    parser.add_argument(
        "--configs", nargs="*", help="only these engine rows, as family:width:replicas:precision"
    )
    args = parser.parse_args(argv)
    if args.report_only:  # count FLOPs here where the GPU's backend could not, then redraw
        report = json.loads(Path(args.out).read_text())
        report["engine"] = [r if "flop_per_s" in r else count_flops(r) for r in report["engine"]]
        report["nakkiran_estimate"] = nakkiran_estimate(report["engine"])
        Path(args.out).write_text(json.dumps(report, indent=1))
        from bench import write_section  # the one writer of docs/bench.md

        write_section(markdown(report))
        print(markdown(report))
        return 0
    import jax

    from dd.models.rng import scoped

    if jax.default_backend() != "gpu" and not args.tiny:
        print(
            f"GPU benchmark skipped: JAX has no GPU backend here (platform {jax.default_backend()})"
        )
        return 0
    with scoped():
        report = run(
            Path(args.out),
            tiny=args.tiny,
            sweep=args.sweep,
            configs=args.configs,
            check_determinism=args.determinism,
        )
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
