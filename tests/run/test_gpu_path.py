"""The GPU path, checked on a CPU wherever it can be: the install picks the CUDA build where a
GPU answers, a pack's weight gradients are batch-grouped convolutions, narrow conv nets share
a padded program, precision is declared and kept, out-of-memory packs split, packs stay on the
GPU Ray gave their worker, and a pack that asked for a GPU refuses to train on a CPU."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from dd.plan.packs import make_packs, pack_key
from dd.plan.sweep import parse_spec
from faultsite.dd_faults import env as faults_env
from helpers import gpu_answers, run_dd, without_gpu

pytestmark = pytest.mark.usefixtures("fresh_programs")  # narrow ResNet-18s of their own

ROOT = Path(__file__).resolve().parents[2]

CNN_SPEC = {
    "name": "cnn",
    "data": {"name": "mnist1d", "n_train": 64, "train_pool": 128, "n_test": 100},
    "model": {"name": "cnn", "width": 4},
    "train": {"optimizer": "sgd", "lr": 0.05, "batch_size": 16, "epochs": 2, "eval_points": 1},
}


# --------------------------------------------------------------------------- install


@pytest.mark.parametrize("nvidia_smi", [True, False])
def test_make_installs_the_cuda_build_where_nvidia_smi_answers(tmp_path, nvidia_smi):
    fake = tmp_path / "bin"
    fake.mkdir()
    if nvidia_smi:  # a stand-in for the driver's tool
        (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3'\n")
        (fake / "nvidia-smi").chmod(0o755)
    env = {**os.environ, "PATH": str(fake)}  # only the stand-in, even on a machine with a GPU
    env.pop("ACCEL", None)
    out = subprocess.run(
        [shutil.which("make"), "-n", "install", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ("jax[cuda12]==" in out) == nvidia_smi


@pytest.mark.parametrize("answer", ["answers", "fails", "missing"])
def test_the_tests_see_a_gpu_where_nvidia_smi_lists_one_as_make_does(tmp_path, monkeypatch, answer):
    fake = tmp_path / "bin"
    fake.mkdir()
    if answer != "missing":
        code = 0 if answer == "answers" else 9  # 9: the driver's "no devices were found"
        (fake / "nvidia-smi").write_text(f"#!/bin/sh\necho 'GPU 0: NVIDIA H200'\nexit {code}\n")
        (fake / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", str(fake))
    gpu_answers.cache_clear()
    try:
        assert gpu_answers() == (answer == "answers")
    finally:
        gpu_answers.cache_clear()  # the next caller asks this machine's own nvidia-smi again


def test_a_bad_accel_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        ["make", "-n", "install", "ACCEL=rocm", f"VENV={tmp_path / 'v'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "ACCEL must be cpu or cuda (got rocm)" in done.stderr


# --------------------------------------------------------------------------- gradients


def _cnn_step_hlo(spec: dict, gradient_inside_vmap: bool = False) -> str:
    """The pre-optimisation HLO of one training step of a 3-replica CNN pack."""
    from dd.engine.data import load_dataset
    from dd.engine.device_data import draw_setups, to_device
    from dd.engine.step import Program, epoch_orders, init_replicas, pack_step

    (pack,) = make_packs(
        list(parse_spec({**spec, "grid": {"seed": [0, 1, 2]}}).trials), parse_spec(spec).resources
    )
    key = pack.key
    data = to_device(load_dataset(key.data), key.data, 1000)
    program = Program(trial=key, n_rows=64, n_classes=10, augment=False)
    r = 3
    setups = draw_setups(
        data,
        jnp.arange(r, dtype=jnp.uint32),
        jnp.full(r, 64),
        jnp.zeros(r),
        jnp.full(r, 0.05),
        jnp.zeros(r),
        n_rows=64,
    )
    replicas = init_replicas(program, data, setups, jnp.full(r, 4))
    orders = epoch_orders(program, setups, 0)
    if not gradient_inside_vmap:
        step = jax.jit(lambda s, rep, o: pack_step(program, data, s, rep, o, 0))
    else:  # the old way, as a control: each replica differentiates its own loss under vmap
        step = jax.jit(
            lambda s, rep, o: jax.vmap(
                lambda s1, r1, o1: jax.tree.map(
                    lambda a: a[0],
                    pack_step(
                        program,
                        data,
                        jax.tree.map(lambda a: a[None], s1),
                        jax.tree.map(lambda a: a[None], r1),
                        o1[None],
                        0,
                    ),
                )
            )(s, rep, o)
        )
    return step.lower(setups, replicas, orders).compiler_ir(dialect="hlo").as_hlo_text()


def _convolutions(hlo: str) -> list[dict]:
    out = []
    for line in hlo.splitlines():
        if " convolution(" not in line:
            continue
        size = re.search(r"window=\{size=([0-9x]+)", line).group(1)
        out.append(
            {
                "window": max(int(n) for n in size.split("x")),
                "feature_groups": int(re.search(r"feature_group_count=(\d+)", line).group(1))
                if "feature_group_count" in line
                else 1,
                "batch_groups": int(re.search(r"batch_group_count=(\d+)", line).group(1))
                if "batch_group_count" in line
                else 1,
            }
        )
    return out


@pytest.mark.slow
def test_a_cnn_pack_differentiates_the_pack_so_weight_gradients_are_batch_grouped():
    convs = _convolutions(_cnn_step_hlo(CNN_SPEC))
    kernel = 3
    assert convs, "the step has convolutions"
    assert all(c["window"] <= kernel for c in convs if c["feature_groups"] > 1), (
        "no feature-grouped convolution with a feature map as its kernel"
    )
    assert sum(c["batch_groups"] == 3 for c in convs) == 4, "one per conv layer's weights"
    control = _convolutions(_cnn_step_hlo(CNN_SPEC, gradient_inside_vmap=True))
    assert any(c["feature_groups"] > 1 and c["window"] > kernel for c in control), (
        "the check catches a gradient taken inside the replica vmap"
    )


# --------------------------------------------------------------------------- padding


def test_narrow_cnn_widths_share_padded_programs():
    spec = parse_spec({**CNN_SPEC, "grid": {"model.width": list(range(1, 34)), "seed": [0]}})
    keys = {t.model.width: pack_key(t).model for t in spec.trials}
    assert {keys[k].width for k in range(1, 17)} == {16}, "widths up to 16 share one program"
    assert [keys[k].width for k in (17, 24, 33)] == [17, 24, 33], "a wider net compiles its own"
    packs = make_packs(list(spec.trials), spec.resources)
    assert len(packs) == 1 + 17


@pytest.mark.parametrize(
    "width, channels",
    [
        (5, (16, 32, 64, 128)),
        (16, (16, 32, 64, 128)),
        (33, (40, 72, 136, 264)),
        (36, (40, 72, 144, 288)),
    ],
)
def test_a_conv_program_rounds_only_the_layers_that_need_it(width, channels):
    """Each layer's channels up to a multiple of 8 (8k always is one, 4k when k is even):
    k = 33 compiled at 40, 80, 160, 320 channels before."""
    from dd.models.registry import make_model, program_trial

    trial = next(iter(parse_spec({**CNN_SPEC, "model": {"name": "cnn", "width": width}}).trials))
    program = make_model(program_trial(trial))
    x = jnp.zeros((1,) + trial.data.input_shape)
    params = jax.eval_shape(lambda: program.init(jax.random.key(0), x, train=False))["params"]
    assert tuple(params[f"conv_{b}"]["kernel"].shape[-1] for b in range(4)) == channels


def test_the_channel_rounding_is_the_program_s_not_the_spec_s():
    """A spec cannot set it, and it enters neither trial ids nor the rows' config columns."""
    from dd.models.registry import program_trial
    from dd.spec.errors import SpecError
    from dd.spec.ids import trial_id
    from dd.store.schema import flatten_config

    with pytest.raises(SpecError, match="model.channel_multiple: unknown field"):
        parse_spec({**CNN_SPEC, "model": {"name": "cnn", "width": 40, "channel_multiple": 8}})
    trial = next(iter(parse_spec({**CNN_SPEC, "model": {"name": "cnn", "width": 40}}).trials))
    program = program_trial(trial)
    assert program.model.channel_multiple == 8 and program != trial
    assert trial_id(program) == trial_id(trial), "the same network computed"
    assert not [c for c in flatten_config(program) if "channel" in c]


def _conv_padding_benchmark():
    import importlib.util

    path = ROOT / "benchmarks" / "conv_padding.py"
    spec = importlib.util.spec_from_file_location("conv_padding", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # lowers three CIFAR-shaped training steps
def test_a_wide_cnn_program_spends_a_third_of_the_old_rule_s_extra_flops():
    """XLA's cost analysis of one training step, as docs/bench.md's "Conv padding" measures
    it: k = 33 pays 16.5% over its own FLOPs (the old 40-wide program 46%)."""
    from dd.models.registry import program_trial

    bench = _conv_padding_benchmark()
    trial = bench.trial_of("cnn", 33)
    own = bench.step_flops(trial)
    program = bench.step_flops(program_trial(trial)) / own - 1
    before = bench.step_flops(bench.old_rule(trial)) / own - 1
    assert 0 < program < 0.17 and before > 0.45
    assert program < before / 2.5


@pytest.mark.slow  # compiles each family's narrow and padded programs, with gradients
@pytest.mark.parametrize(
    "family, width, data",
    [
        ("cnn", 5, {"name": "mnist1d", "n_train": 16, "train_pool": 64, "n_test": 10}),
        ("cnn", 37, {"name": "mnist1d", "n_train": 16, "train_pool": 64, "n_test": 10}),
        ("resnet18", 3, {"name": "cifar10", "n_train": 16, "n_test": 10}),
        ("resnet18", 17, {"name": "cifar10", "n_train": 16, "n_test": 10}),
    ],
)
def test_a_padded_narrow_conv_net_computes_the_narrow_network(family, width, data):
    """Forward (batch statistics) and gradients of the padded program, cut back to the
    trial's own shapes, equal the narrow network's on those parameters."""
    from dd.datasets import registry as datasets
    from dd.engine.padding import place, unpad
    from dd.models import registry as models
    from dd.models.precision import matmul_precision
    from dd.models.registry import make_model, program_trial
    from dd.spec.config import Data, Model, Train, Trial
    from dd.spec.fields import build

    datasets.load()  # fills Data.VARIANTS
    models.load()  # and Model.VARIANTS (run alone, no earlier test has)
    trial = Trial(
        data=build(Data, data, "data"),
        model=build(Model, {"name": family, "width": width}, "model"),
        train=Train(),
    )
    program = program_trial(trial)
    assert program.model.width == max(width, 16) and program.model.channel_multiple == 8
    x = jax.random.normal(jax.random.key(1), (8,) + trial.data.input_shape)
    y = jnp.arange(8) % 10
    wide, small = make_model(program), make_model(trial)
    variables = wide.init(jax.random.key(0), x[:1], train=False)
    params = place(program, small.init(jax.random.key(0), x[:1], train=False)["params"], width)

    def loss(model, p, stats):
        logits, _ = model.apply(
            {"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
        )
        return jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(8), y]), logits

    small_stats = jax.eval_shape(lambda: small.init(jax.random.key(0), x[:1], train=False))
    small_stats = jax.tree.map(lambda s: jnp.zeros(s.shape), small_stats["batch_stats"])
    cut = jax.tree.map(jnp.asarray, unpad(program, params, width))
    with matmul_precision("float32"):  # a GPU's default convolutions are TF32
        (l_wide, logits_wide), g_wide = jax.value_and_grad(
            lambda p: loss(wide, p, variables["batch_stats"]), has_aux=True
        )(params)
        (l_small, logits_small), g_small = jax.value_and_grad(
            lambda p: loss(small, p, small_stats), has_aux=True
        )(cut)
    np.testing.assert_allclose(logits_wide, logits_small, rtol=1e-5, atol=1e-5)
    for a, b in zip(
        jax.tree.leaves(unpad(program, g_wide, width)), jax.tree.leaves(g_small), strict=True
    ):
        # cuDNN picks other float32 algorithms for other channel counts: on an H100 the
        # ResNet's gradients missed rtol 1e-4 (its logits matched), so a GPU gets 2e-3
        cpu = jax.default_backend() == "cpu"
        np.testing.assert_allclose(a, b, rtol=1e-4 if cpu else 2e-3, atol=1e-6 if cpu else 1e-5)
    for g, live in zip(jax.tree.leaves(g_wide), jax.tree.leaves(g_small), strict=True):
        padding = np.array(g)
        padding[tuple(slice(0, n) for n in live.shape)] = 0
        assert not padding.any(), "no gradient reaches the padding"


# --------------------------------------------------------------------------- precision


@pytest.mark.slow
def test_bf16_trains_like_float32_with_float32_parameters_and_statistics(tmp_path):
    from dd.engine.checkpoint import load_params
    from dd.engine.options import PackOptions
    from dd.engine.train import train_pack

    results = {}
    for precision in ("float32", "bf16"):
        spec = parse_spec(
            {
                **CNN_SPEC,
                "train": {
                    **CNN_SPEC["train"],
                    "epochs": 6,
                    "eval_points": 2,
                    "precision": precision,
                    "save_params": True,
                },
                "grid": {"seed": [0, 1]},
            }
        )
        (pack,) = make_packs(list(spec.trials), spec.resources)
        assert pack.key.train.precision == precision, "part of the pack key"
        files = [tmp_path / f"{precision}-{i}.msgpack" for i in range(2)]
        results[precision] = train_pack(list(pack.trials), pack.key, PackOptions(param_files=files))
        for path in files:
            assert {np.asarray(a).dtype for a in jax.tree.leaves(load_params(path))} == {
                np.dtype("float32")
            }
    for f32, b16 in zip(results["float32"], results["bf16"], strict=True):
        first, last = f32[0]["train_loss"], f32[-1]["train_loss"]
        assert last < first, "it trains"
        assert b16[-1]["train_loss"] == pytest.approx(last, rel=0.05), (
            "bf16 ends within 5% of float32's training loss"
        )
        assert b16[-1]["train_loss"] != last, "and is a different computation"


@pytest.mark.slow
def test_float64_precision_trains_a_cnn_in_float64_whichever_loop(tmp_path):
    """The host loop (conv nets on CPU) and the scanned one: orders, parameters and rows."""
    from dd.engine.checkpoint import load_params
    from dd.engine.options import PackOptions
    from dd.engine.train import train_pack

    train = {**CNN_SPEC["train"], "precision": "float64", "save_params": True}
    spec = parse_spec({**CNN_SPEC, "train": train, "grid": {"seed": [0, 1]}})
    (pack,) = make_packs(list(spec.trials), spec.resources)
    for loop in ("host", "scan"):
        files = [tmp_path / f"{loop}-{i}.msgpack" for i in range(2)]
        rows = train_pack(list(pack.trials), pack.key, PackOptions(loop=loop, param_files=files))
        assert all(0 < r[-1]["train_loss"] < np.inf for r in rows), loop
        for path in files:
            leaves = jax.tree.leaves(load_params(path))
            assert {np.asarray(a).dtype for a in leaves} == {np.dtype("float64")}, loop


def test_precision_is_validated_and_stored_in_rows(write_spec, tmp_path, capsys):
    from dd.cli import main

    bad = write_spec({**CNN_SPEC, "train": {**CNN_SPEC["train"], "precision": "fp8"}})
    assert main(["sweep", str(bad), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "train.precision: unknown value 'fp8'; allowed: float32, tf32, bf16, float64" in err
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- accelerator check


@without_gpu
def test_a_pack_that_asked_for_a_gpu_refuses_to_train_without_one(tmp_path):
    from dd.plan.sweep import Resources
    from dd.run.worker import AcceleratorError, run_pack

    spec = parse_spec(CNN_SPEC)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    with pytest.raises(
        AcceleratorError,
        match=r"^resources.gpus is 1 but JAX on this worker "
        r"has no GPU backend \(platform cpu\)",
    ):
        run_pack("cnn", str(tmp_path), pack, Resources(gpus=1.0))
    assert not (tmp_path / "cnn" / "packs").exists()


@pytest.mark.gpu
def test_a_pack_that_asked_for_a_gpu_trains_on_it(tmp_path):
    from dd.plan.sweep import Resources
    from dd.run.worker import run_pack
    from dd.store.sweep import SweepStore

    spec = parse_spec(CNN_SPEC)
    (pack,) = make_packs(list(spec.trials), spec.resources)
    run_pack("cnn", str(tmp_path), pack, Resources(gpus=1.0))
    table = SweepStore(tmp_path, "cnn").read_results()
    assert set(table["platform"].to_pylist()) == {"gpu"}
    assert table.num_rows > 0 and all(e is not None for e in table["test_error"].to_pylist())


# --------------------------------------------------------------------------- memory check


@pytest.mark.slow  # compiles the pack's programs three ways
@pytest.mark.parametrize("loop", ["scan", "host"])
def test_the_memory_check_counts_the_evaluation_inside_the_step_program(loop):
    """A budget above the training program's need but below the evaluation's (1000-example
    chunks of a 4000-example test set) stops the pack before it trains, in either loop."""
    from dd.engine.data import load_dataset
    from dd.engine.device_data import to_device
    from dd.engine.evaluate import EVAL_CHUNK, evaluate
    from dd.engine.memory import OutOfMemory, compiled_bytes
    from dd.engine.options import PackOptions
    from dd.engine.programs import prepare
    from dd.engine.step import Program, train_epochs_on_device
    from dd.engine.train import MAPPED_PLATFORMS, replica_values, train_pack

    spec = parse_spec(
        {
            **CNN_SPEC,
            "data": {"name": "mnist1d", "n_train": 64, "train_pool": 4000, "n_test": 4000},
            "train": {**CNN_SPEC["train"], "epochs": 1},
            "grid": {"seed": [0, 1]},
        }
    )
    trials, key = list(spec.trials), pack_key(spec.trials[0])
    data = to_device(load_dataset(key.data), key.data, EVAL_CHUNK)
    mapped = jax.default_backend() in MAPPED_PLATFORMS  # as train_pack builds it here
    program = Program(trial=key, n_rows=64, n_classes=10, augment=False, mapped=mapped)
    setups, replicas = prepare(program, data, jax.tree.map(jnp.asarray, replica_values(trials)))
    first, last = np.int32(0), np.int32(1)
    training = compiled_bytes(
        train_epochs_on_device.lower(program, data, setups, replicas, first, last).compile()
    )
    evaluation = compiled_bytes(evaluate.lower(program, data, setups, replicas).compile())
    assert evaluation > 2 * training, "the premise: evaluating needs more than training"
    plan = {"loop": loop, "execution": "vmap"}  # vmapped, as a GPU runs narrow conv nets
    with pytest.raises(OutOfMemory, match="RESOURCE_EXHAUSTED"):
        train_pack(trials, key, PackOptions(memory_budget=(training + evaluation) // 2, **plan))
    rows = train_pack(trials, key, PackOptions(memory_budget=2 * evaluation, **plan))
    assert [len(r) for r in rows] == [1, 1], "a budget the evaluation fits trains the pack"


# --------------------------------------------------------------------------- sweeps on Ray

MLP_SWEEP = {
    "name": "gpu_path",
    "data": {"name": "mnist1d", "n_train": 100, "train_pool": 200, "n_test": 100},
    "model": {"name": "mlp", "width": 8},
    "train": {"batch_size": 50, "epochs": 2, "eval_points": 1},
    "grid": {"model.width": [8, 80], "seed": [0, 1, 2, 3]},
    # two packs of four: 8 in the 64-wide rung, 80 in its own (dd.models.mlp ladder)
    "resources": {"cpus": 1, "max_pack": 4},
}


def _sweep(tmp_path: Path, spec: dict, **faults) -> subprocess.CompletedProcess:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return run_dd(
        "sweep",
        path,
        "--results",
        tmp_path / "results",
        "--no-curves",
        "--cpus",
        "2",
        env=faults_env(**faults),
    )


@pytest.mark.slow
def test_a_pack_out_of_memory_splits_in_halves_and_stores_every_trial_once(tmp_path):
    from dd.store.sweep import SweepStore

    done = _sweep(tmp_path, MLP_SWEEP, oom_above=1)
    assert done.returncode == 0, done.stderr[-3000:]
    store = SweepStore(tmp_path / "results", "gpu_path")
    table = store.read_results()
    pairs = list(zip(table["trial_id"].to_pylist(), table["step"].to_pylist(), strict=True))
    assert len(set(table["trial_id"].to_pylist())) == 8 and len(pairs) == len(set(pairs))
    assert store.failures() == []
    (run,) = store.runs()
    assert run["oom_splits"] == 6, "two packs of four replicas, each split 1 + 2 times"
    assert "ran out of memory" in done.stderr


PLACEMENT_SCRIPT = """
import json, sys
from pathlib import Path
import ray
from dd.run.execute import run_sweep
from dd.spec.settings import Settings
from dd.plan.sweep import parse_spec

spec, root = parse_spec(json.loads(sys.argv[1])), Path(sys.argv[2])
ray.init(address="local", num_cpus=8, num_gpus=2, include_dashboard=False,
         logging_level="ERROR")
report = run_sweep(spec, root, settings=Settings(compile_cache=None), quiet=True)
print("RESULT", json.dumps({"failed": report.failed_packs, "placements": report.placements}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("gpus", [0.5, 1.0])
def test_every_pack_runs_on_the_gpu_ray_gave_its_worker(tmp_path, gpus):
    """Fake GPUs (Ray's num_gpus on a CPU node): packs run in long-lived workers whose
    CUDA_VISIBLE_DEVICES never changes and is what Ray assigned them; with whole GPUs, by
    default, one worker per GPU runs every pack placed on it (two at a time)."""
    spec = {
        **MLP_SWEEP,
        "grid": {"model.width": [8, 80, 96, 112, 128, 144], "seed": [0]},
        "resources": {"cpus": 1, "gpus": gpus},
    }
    done = subprocess.run(
        [sys.executable, "-c", PLACEMENT_SCRIPT, json.dumps(spec), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=faults_env(gpus_on_cpu=True),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(
        next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[
            len("RESULT ") :
        ]
    )
    assert result["failed"] == []
    placements = result["placements"]
    assert len(placements) == 6
    for p in placements:
        assert p["visible_now"] == p["visible_at_start"] == ",".join(p["ray_gpu_ids"])
        assert len(p["ray_gpu_ids"]) == 1
    workers = {p["pid"] for p in placements}
    assert len(workers) <= 4 if gpus == 0.5 else len(workers) == 2, "one worker per GPU (share)"
    gpu_of = {(p["pid"], p["visible_now"]) for p in placements}
    assert len(gpu_of) == len(workers), "each worker's packs all ran on its own GPU"
    assert len(workers) < len(placements), "workers run several packs each"
    assert len({p["visible_now"] for p in placements}) == 2, "both GPUs are used"


@pytest.mark.slow
def test_the_gpu_benchmark_runs_every_code_path_at_toy_sizes(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {(r["family"], r["replicas"], r["precision"]) for r in report["engine"]} >= {
        ("mlp", 1, "bf16"),
        ("mlp", 2, "bf16"),
        ("cnn", 2, "float32"),
    }
    assert all(r["step_s"] > 0 and r["flop_per_s"] > 0 for r in report["engine"])
    assert report["nakkiran_estimate"]["gpu_hours"] > 0
    assert "| cnn | 2 | 2 | float32 |" in done.stdout and "Targets:" in done.stdout


@without_gpu
@pytest.mark.slow
def test_the_gpu_benchmark_skips_in_one_line_without_a_gpu(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--out", str(tmp_path / "gpu.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0
    assert (
        done.stdout.strip() == "GPU benchmark skipped: JAX has no GPU backend here (platform cpu)"
    )
    assert not (tmp_path / "gpu.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "float64"])
def test_rows_record_platform_device_precision_and_lock(tmp_path, precision):
    from dd.run.worker import run_pack
    from dd.spec.provenance import lock_hash
    from dd.store.sweep import SweepStore

    spec = parse_spec(
        {
            **MLP_SWEEP,
            "train": {**MLP_SWEEP["train"], "precision": precision},
            "grid": {"seed": [0, 1]},
        }
    )
    (pack,) = make_packs(list(spec.trials), spec.resources)
    run_pack("gpu_path", str(tmp_path), pack, spec.resources)
    table = SweepStore(tmp_path, "gpu_path").read_results()
    assert set(table["platform"].to_pylist()) == {jax.devices()[0].platform}
    assert set(table["device_kind"].to_pylist()) == {jax.devices()[0].device_kind}
    assert set(table["train_precision"].to_pylist()) == {precision}
    assert all(0 < v < np.inf for v in table["train_loss"].to_pylist()), "it trained"
    assert set(table["lock_sha256"].to_pylist()) == {lock_hash()} and lock_hash()


@pytest.mark.slow
def test_a_worker_given_no_gpu_keeps_jax_off_any_gpu():
    script = (
        "import jax; from dd.run.worker import PackWorker; PackWorker(None, cpu_only=True); "
        "print(jax.config.jax_platforms, jax.default_backend())"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["cpu", "cpu"]
