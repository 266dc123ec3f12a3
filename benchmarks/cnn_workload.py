"""`make bench`, the CNN workload: sweeps/mnist1d_cnn.yaml (Nakkiran's 5-layer CNN on
MNIST-1D, 30% label noise, Adam, batch 128, its full 200 epochs) cut to WIDTHS at one seed,
through `dd sweep` with an empty and with a primed compilation cache, against an eager
PyTorch loop over the same networks, in one run on one machine. Reports seconds per
replica-epoch (the issue's measure) and the final test error per width. Then the whole spec
(12 widths x 2 seeds) as a user runs it, with an empty compilation cache: its wall time
against the over an hour that dd 0.2.0 took (steps inside ``lax.scan`` on the CPU).

Run: python benchmarks/cnn_workload.py [--report-only]. Writes benchmarks/cnn_workload.json
and the "## The CNN workload" section of docs/bench.md.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import measure_and_write  # noqa: E402  (one writer of docs/bench.md)
from workload import dd_sweep, profile  # noqa: E402

SPEC = ROOT / "sweeps" / "mnist1d_cnn.yaml"
WIDTHS = [4, 8, 16, 32]
SEEDS = [0]


def torch_cnn(width: int):
    """Nakkiran's 5-layer CNN in PyTorch, as dd.models.cnn builds it for 1-D signals: Conv(3) +
    BatchNorm + ReLU blocks of k, 2k, 4k, 8k, max pools of 2 after blocks 1-3, a global max,
    a Dense layer."""
    import torch
    from torch import nn

    layers, channels = [], 1
    for block, multiplier in enumerate((1, 2, 4, 8)):
        layers += [
            nn.Conv1d(channels, width * multiplier, 3, padding=1),
            nn.BatchNorm1d(width * multiplier, momentum=0.1, eps=1e-5),
            nn.ReLU(),
        ]
        if block > 0:
            layers.append(nn.MaxPool1d(2))
        channels = width * multiplier

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.Sequential(*layers)
            self.logits = nn.Linear(channels, 10)

        def forward(self, x):
            return self.logits(torch.amax(self.blocks(x[:, None, :]), dim=2))

    return Net()


def run_torch(spec: dict) -> tuple[float, dict[int, float]]:
    """One width and one seed at a time, eager PyTorch on the CPU; each seed draws its own
    training subset and noisy labels from the same MNIST-1D pool."""
    import torch

    from dd.datasets.mnist1d import Mnist1dData
    from dd.engine.data import load_dataset

    data, train = spec["data"], spec["train"]
    pool = load_dataset(
        Mnist1dData(n_train=data["n_train"], train_pool=data["train_pool"], n_test=data["n_test"])
    )
    x_test = torch.from_numpy(pool.x_test.astype(np.float32))
    y_test = torch.from_numpy(pool.y_test.astype(np.int64))
    n, batch = data["n_train"], train["batch_size"]
    torch.set_num_threads(os.cpu_count() or 1)
    errors: dict[int, list[float]] = {}
    start = time.perf_counter()
    for width in WIDTHS:
        for seed in SEEDS:
            rng = np.random.default_rng(seed)
            rows = rng.choice(len(pool.x_pool), n, replace=False)
            y = pool.y_pool[rows].astype(np.int64)
            flip = rng.random(n) < data["label_noise"]
            y = np.where(flip, (y + rng.integers(1, 10, n)) % 10, y)
            x, y = torch.from_numpy(pool.x_pool[rows].astype(np.float32)), torch.from_numpy(y)
            torch.manual_seed(seed)
            model = torch_cnn(width)
            opt = torch.optim.Adam(model.parameters(), lr=train["lr"])
            loss_fn = torch.nn.CrossEntropyLoss()
            model.train()
            for _ in range(train["epochs"]):
                order = torch.randperm(n)
                for i in range(n // batch):
                    take = order[i * batch : (i + 1) * batch]
                    opt.zero_grad()
                    loss_fn(model(x[take]), y[take]).backward()
                    opt.step()
            model.eval()
            with torch.no_grad():
                wrong = (model(x_test).argmax(1) != y_test).float().mean().item()
            errors.setdefault(width, []).append(wrong)
    wall = time.perf_counter() - start
    return wall, {w: float(np.mean(e)) for w, e in errors.items()}


def measure() -> dict:
    spec = yaml.safe_load(SPEC.read_text())
    out = {
        "machine": f"{os.uname().sysname} {os.uname().machine}, {os.cpu_count()} CPUs",
        "widths": WIDTHS,
        "seeds": SEEDS,
        "epochs": spec["train"]["epochs"],
        "walls_s": {},
        "test_error": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, results in (("dd", "cold"), ("dd_warm_cache", "warm")):
            wall, errors, packs = dd_sweep(
                SPEC,
                tmp / results,
                tmp / "cache",
                f"grid.model.width={WIDTHS}",
                f"grid.seed={SEEDS}",
            )
            out["walls_s"][name], out["test_error"][name] = wall, errors
            out.setdefault("packs_s", {})[name] = packs
            print(f"{name} {wall:.1f} s", flush=True)
        wall, _, packs = dd_sweep(SPEC, tmp / "full", tmp / "full_cache")
        out["full_sweep"] = {"wall_s": wall, "packs_s": packs}
        print(f"the whole spec: {wall:.1f} s", flush=True)
    wall, errors = run_torch(spec)
    out["walls_s"]["pytorch"], out["test_error"]["pytorch"] = wall, errors
    print(f"pytorch {wall:.1f} s", flush=True)
    out["load_average"] = os.getloadavg()[0]
    return out


def markdown(r: dict) -> str:
    replica_epochs = len(r["widths"]) * len(r["seeds"]) * r["epochs"]
    lines = [
        "## The CNN workload",
        "",
        "Measured by `python benchmarks/cnn_workload.py` on "
        f"{r['machine']} (1-minute load average {r['load_average']:.1f} at the end): "
        f"`dd sweep sweeps/mnist1d_cnn.yaml` cut to k = {', '.join(map(str, r['widths']))} at "
        f"{len(r['seeds'])} seed(s), {r['epochs']} epochs ({replica_epochs} replica-epochs), "
        "with an empty and with a primed compilation cache, against an eager PyTorch loop "
        "over the same networks. dd's times are whole `dd sweep` runs (start-up and "
        "compiling included).",
        "",
        "| contender | wall (s) | ms per replica-epoch | time / PyTorch's |",
        "|---|---|---|---|",
    ]
    torch_wall = r["walls_s"]["pytorch"]
    for name, wall in r["walls_s"].items():
        lines.append(
            f"| {name} | {wall:.1f} | {1000 * wall / replica_epochs:.1f} | "
            f"{wall / torch_wall:.2f} |"
        )
    lines += profile(r, f"{len(r['seeds'])} seed(s)")
    if full := r.get("full_sweep"):
        trials = sum(p["trials"] for p in full["packs_s"])
        lines += [
            "",
            f"The whole spec (`dd sweep sweeps/mnist1d_cnn.yaml`, {trials} trials in "
            f"{len(full['packs_s'])} packs, empty compilation cache): {full['wall_s']:.1f} s "
            f"= {full['wall_s'] / 60:.1f} min (dd 0.2.0: over an hour).",
        ]
    lines += [
        "",
        "Final test error per width:",
        "",
        "| contender | " + " | ".join(str(w) for w in r["widths"]) + " |",
        "|---|" + "---|" * len(r["widths"]),
    ]
    for name, err in r["test_error"].items():
        cells = " | ".join(f"{err.get(w, err.get(str(w))):.3f}" for w in r["widths"])
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    measure_and_write(sys.argv[1:], "cnn_workload", measure, markdown)
