"""A researcher's own dataset, outside dd: MNIST-1D signals from the ``mnist1d`` generator
(Greydanus & Kobak; no download), saved as the four arrays dd reads.

    python examples/own_model/make_data.py [OUT.npz]   # default: examples/own_model/mnist1d.npz

``load`` returns the same arrays, for ``data: {name: python, loader: own_model.make_data:load}``.
"""

import sys
from pathlib import Path

import numpy as np


def load(n_train: int = 4000, n_test: int = 1000, seed: int = 7) -> dict[str, np.ndarray]:
    """``n_train`` + ``n_test`` signals of length 40 in 10 classes, split in that order."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = -(-(n_train + n_test) // 10) * 10  # the generator makes n // 10 a class
    args.train_split, args.seed = 1.0, seed
    made = make_dataset(args)
    x, y = made["x"].astype(np.float32), made["y"].astype(np.int64)
    return {
        "x_train": x[:n_train],
        "y_train": y[:n_train],
        "x_test": x[n_train : n_train + n_test],
        "y_test": y[n_train : n_train + n_test],
    }


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("mnist1d.npz"))
    arrays = load()
    np.savez(out, **arrays)
    print(f"{out}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))
