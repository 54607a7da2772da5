"""MNIST-5k, the real-data subset that tests and benchmarks share, and its fixed train/test split.

The file is not part of the project (see ../shared/data/README.md): it is looked for in
$COMPRESSOR_SHARED_DATA, else in ../shared/data beside the checkout. It is sorted by class, so the
split shuffles it with seed 0 (the tests' and benchmarks' fixed split; benchmarks that vary the split
across seeds pass another) before the first 4,000 samples become the training set.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from compressor.data.sources.mnist_csv import SIDE, read_mnist_csv

MNIST_FILE = "mnist_5k.csv.gz"
TRAIN_SAMPLES = 4000
SPLIT_SEED = 0
_CHECKOUT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    return Path(os.environ.get("COMPRESSOR_SHARED_DATA", _CHECKOUT.parent / "shared" / "data"))


def mnist_path(data_dir: Path | None = None) -> Path:
    """Where MNIST-5k is (or would be): in `data_dir`, by default shared_data_dir(). It may not exist."""
    return Path(data_dir or shared_data_dir()) / MNIST_FILE


def load_mnist_split(path: Path | None = None, split_seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): pixels scaled to [0, 1], NCHW float32, int64 labels; the
    shuffle that decides which samples are held out is seeded with `split_seed`."""
    pixels, y = read_mnist_csv(Path(path or mnist_path()))
    x = (pixels / 255).astype(np.float32).reshape(-1, 1, SIDE, SIDE)
    order = np.random.default_rng(split_seed).permutation(len(x))
    train, test = order[:TRAIN_SAMPLES], order[TRAIN_SAMPLES:]
    return x[train], y[train], x[test], y[test]
