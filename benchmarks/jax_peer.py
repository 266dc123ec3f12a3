"""The minimal hand-written JAX program for the default sweep: the peer dd's packing is held
to. Per width, one compiled program trains every seed at once (``vmap`` over seeds, one
``lax.scan`` over the epochs, each a permutation and a scan over its batches) and measures
the final test error; the widths run one after another, so the sweep compiles once per
width. It keeps no rows, checkpoints or evaluation points along the way: what dd does on top
of this is what the ratio costs.

Used by benchmarks/workload.py; run alone: python benchmarks/jax_peer.py [SEEDS] [EPOCHS].
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # the shared data and the peers' label noise


def run_jax(
    data: dict, widths: list[int], seeds: list[int], epochs: int
) -> tuple[float, dict[int, float]]:
    """Wall time of the whole sweep (compiles included) and the mean final test error per
    width: MLP 40 -> H -> H -> 10, SGD with momentum, batch ``bench.BATCH``."""
    import jax
    import jax.numpy as jnp
    import optax

    n, batch = len(data["x"]), bench.BATCH
    steps_per_epoch = n // batch
    x, x_test = jnp.asarray(data["x"]), jnp.asarray(data["x_test"])
    y_test = jnp.asarray(data["y_test"])
    opt = optax.sgd(bench.LR, momentum=bench.MOMENTUM)

    def init(key, width):
        sizes = (40, width, width, 10)
        keys = jax.random.split(key, len(sizes) - 1)
        return [
            (
                jax.random.normal(k, (a, b)) * jnp.sqrt(1.0 / a),
                jnp.zeros(b),
            )
            for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
        ]

    def forward(params, x_BD):
        for w, b in params[:-1]:
            x_BD = jax.nn.relu(x_BD @ w + b)
        w, b = params[-1]
        return x_BD @ w + b

    def loss(params, x_BD, y_B):
        return optax.softmax_cross_entropy_with_integer_labels(forward(params, x_BD), y_B).mean()

    def train_one(key, y, width):
        params = init(key, width)
        state = opt.init(params)

        def epoch_of_steps(carry, epoch):  # one permutation an epoch, its batches in order
            order = jax.random.permutation(jax.random.fold_in(key, epoch), n)
            batches = order[: steps_per_epoch * batch].reshape(steps_per_epoch, batch)

            def step(carry, rows):
                params, state = carry
                grads = jax.grad(loss)(params, x[rows], y[rows])
                updates, state = opt.update(grads, state)
                return (optax.apply_updates(params, updates), state), None

            return jax.lax.scan(step, carry, batches)[0], None

        (params, _), _ = jax.lax.scan(epoch_of_steps, (params, state), jnp.arange(epochs))
        return jnp.mean(jnp.argmax(forward(params, x_test), 1) != y_test)

    errors = {}
    start = time.perf_counter()
    for width in widths:
        sweep = jax.jit(jax.vmap(lambda k, y, w=width: train_one(k, y, w)))
        keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
        labels = jnp.asarray(np.stack([bench.noisy(data["y"], s) for s in seeds]))
        errors[width] = float(np.mean(np.asarray(sweep(keys, labels))))
    return time.perf_counter() - start, errors


if __name__ == "__main__":
    seeds, epochs = (int(a) for a in (sys.argv[1:] + ["3", "20"])[:2])
    wall, errors = run_jax(bench.arrays(), bench.WIDTHS, list(range(seeds)), epochs)
    print(f"{wall:.1f} s", {w: round(e, 3) for w, e in errors.items()})
