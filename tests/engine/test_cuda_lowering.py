"""GPU invariants of a CNN pack's programs, checked on a CPU: ``jax.export`` lowers them for
platform ``cuda`` without a GPU, and the StableHLO text says what the GPU will be given.

- in bf16 mode every convolution takes bf16 operands (float32 mode: float32, the control);
- convolutions keep images NHWC: spatial axes in the middle of every activation operand;
- a program's kernels have multiples of 8 channels (tensor cores), but the image's own;
- no host callback, infeed, outfeed, send or recv anywhere in the program (``jax.export``
  also refuses to serialise a program with a host callback, for any platform);
- the replicas' buffers are donated (the outputs alias them);
- at most two activation-sized transposes per convolution (the replica vmap folding its axis
  into the channels and back); a layout change per layer would add more.

Shapes are tiny and chosen so that the activations' batch axes (24 a training batch, 48 and
40 the evaluation's train and test chunks) match no channel or spatial size.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

BATCH, N_TRAIN, N_TEST = 24, 48, 40
ACTIVATION_AXES = {BATCH, N_TRAIN, N_TEST}
IMAGE_CHANNELS = 3
CONV = re.compile(
    r"stablehlo\.convolution\(.*?dim_numbers = \[(?P<lhs>[^]]*)\]x\[(?P<rhs>[^]]*)\]->"
    r"\[(?P<out>[^]]*)\].*?: \(tensor<(?P<a>[^>]*)>, tensor<(?P<b>[^>]*)>\)"
)
TRANSPOSE = re.compile(r"stablehlo\.transpose .*?: \(tensor<(?P<shape>[^>]*)>\)")
HOST_OPS = re.compile(r"stablehlo\.(infeed|outfeed|send|recv)\b|custom_call @\w*callback")
MAIN_ARG = re.compile(r"%arg\d+: tensor<[^>]*>( \{[^}]*\})? loc\(\"(?P<name>[^\"]+)\"\)")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("images") / "images.npz"
    np.savez(
        path,
        x_train=rng.normal(size=(64, 8, 8, IMAGE_CHANNELS)).astype(np.float32),
        y_train=rng.integers(0, 10, 64),
        x_test=rng.normal(size=(N_TEST, 8, 8, IMAGE_CHANNELS)).astype(np.float32),
        y_test=rng.integers(0, 10, N_TEST),
    )
    return str(path)


@functools.cache
def _pack(path: str, precision: str, width: int, replicas: int):
    """A CNN pack's program and arguments, as ``dd.engine.train.train_pack`` builds them."""
    from dd.engine.data import load_dataset
    from dd.engine.device_data import to_device
    from dd.engine.evaluate import EVAL_CHUNK
    from dd.engine.programs import prepare
    from dd.engine.step import Program
    from dd.engine.train import replica_values
    from dd.plan.packs import pack_key
    from dd.plan.resolve import resolve
    from dd.plan.sweep import parse_spec

    spec = resolve(
        parse_spec(
            {
                "name": "lowering",
                "data": {"name": "arrays", "path": path, "n_train": N_TRAIN},
                "model": {"name": "cnn", "width": width},
                "train": {"batch_size": BATCH, "epochs": 1, "precision": precision},
                "grid": {"seed": list(range(replicas))},
            }
        )
    )
    trials = list(spec.trials)
    key = pack_key(trials[0])
    dataset = load_dataset(key.data)
    data = to_device(dataset, key.data, EVAL_CHUNK)
    program = Program(trial=key, n_rows=N_TRAIN, n_classes=dataset.n_classes, augment=False)
    setups, reps = prepare(program, data, jax.tree.map(jnp.asarray, replica_values(trials)))
    return program, data, setups, reps


@functools.cache
def _advance_mlir(path: str, precision: str = "bf16", width: int = 4, replicas: int = 2) -> str:
    from dd.engine.programs import advance

    args = _pack(path, precision, width, replicas)
    first, last, measure = np.int32(0), np.int32(1), np.bool_(True)
    return export.export(advance, platforms=["cuda"])(*args, first, last, measure).mlir_module()


def _dims(shape: str) -> tuple[str, list[int]]:
    *dims, dtype = shape.split("x")
    return dtype, [int(d) for d in dims]


def _convolutions(mlir: str) -> list[dict]:
    return [m.groupdict() for m in CONV.finditer(mlir)]


def _activation_transposes(mlir: str) -> int:
    return sum(bool(ACTIVATION_AXES & set(_dims(m["shape"])[1])) for m in TRANSPOSE.finditer(mlir))


def _donated(mlir: str, prefix: str) -> list[bool]:
    """Per argument of the main function named ``prefix...``: whether its buffer is donated."""
    main = mlir[mlir.index("func.func public @main") :].split("\n", 1)[0]
    return [
        bool(m[1]) and ("tf.aliasing_output" in m[1] or "jax.buffer_donor" in m[1])
        for m in MAIN_ARG.finditer(main)
        if m["name"].startswith(prefix)
    ]


@pytest.mark.slow  # exports two packs' programs
@pytest.mark.parametrize("precision, dtype", [("bf16", "bf16"), ("float32", "f32")])
def test_convolutions_take_the_precision_s_dtype(images, precision, dtype):
    convs = _convolutions(_advance_mlir(images, precision))
    assert len(convs) == 19, "4 forward in training, 8 evaluating, 3 input and 4 weight gradients"
    assert {_dims(c[k])[0] for c in convs for k in ("a", "b")} == {dtype}


@pytest.mark.slow
@pytest.mark.parametrize("width, replicas", [(4, 2), (33, 1)])  # a narrow pack, a wide replica
def test_convolutions_keep_images_nhwc_and_kernels_at_multiples_of_8(images, width, replicas):
    convs = _convolutions(_advance_mlir(images, "bf16", width, replicas))
    forward = [c for c in convs if c["rhs"] in ("0, 1, i, o", "0, 1, o, i")]
    weight_gradients = [c for c in convs if c not in forward]
    assert {(c["lhs"], c["out"]) for c in forward} == {("b, 0, 1, f", "b, 0, 1, f")}
    assert {(c["lhs"], c["rhs"]) for c in weight_gradients} == {("f, 0, 1, b", "i, 0, 1, o")}, (
        "a weight gradient reads the activations and their cotangents as they lie, NHWC"
    )
    for c in forward:
        kernel = _dims(c["b"])[1]
        assert all(n % 8 == 0 or n == IMAGE_CHANNELS for n in kernel[2:]), kernel


@pytest.mark.slow
def test_no_host_callback_or_transfer_inside_the_program(images):
    from dd.engine.programs import host_step

    assert not HOST_OPS.search(_advance_mlir(images))
    program, data, setups, reps = _pack(images, "bf16", 4, 2)
    orders = np.zeros((2, N_TRAIN), np.int32)
    step = export.export(host_step, platforms=["cuda"])(
        program, data, setups, reps, orders, np.int32(0), np.int32(0), np.bool_(True)
    ).mlir_module()
    assert not HOST_OPS.search(step)
    # the control: a callback in a loop, lowered for this CPU (jax.export refuses to
    # serialise any host callback, so for cuda it would not export at all)
    looped = jax.jit(lambda x: jax.lax.fori_loop(0, 2, lambda i, v: _debug(v) + 1, x))
    with_callback = looped.lower(jnp.ones(3)).as_text()
    assert HOST_OPS.search(with_callback)


def _debug(x):
    jax.debug.callback(lambda v: None, x)
    return x


@pytest.mark.slow
def test_the_replicas_buffers_are_donated(images):
    from dd.engine.programs import advance

    donated = _donated(_advance_mlir(images), "replicas.")
    assert donated and all(donated), "every replica leaf's buffer is reused for its output"
    data_donated = _donated(_advance_mlir(images), "data.")
    assert data_donated and not any(data_donated), "the data set is read, never given up"
    # the control: the same function jitted without donation shows none
    undonated = jax.jit(advance.__wrapped__, static_argnames=("program",))
    args = _pack(images, "bf16", 4, 2)
    mlir = export.export(undonated, platforms=["cuda"])(
        *args, np.int32(0), np.int32(1), np.bool_(True)
    ).mlir_module()
    assert not any(_donated(mlir, "replicas."))


@pytest.mark.slow
def test_activation_sized_transposes_are_at_most_two_per_convolution(images):
    mlir = _advance_mlir(images)
    assert 0 < _activation_transposes(mlir) <= 2 * len(_convolutions(mlir))
