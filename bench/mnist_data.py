"""MNIST-5k for the benchmarks: the fixed 4,000 / 1,000 split and dense LeNets trained on it.

The split is the acceptance test's (tests/test_acceptance_mnist.py): the file is sorted by class,
so it is shuffled with seed 0 before the first 4,000 samples become the training set.
"""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import numpy as np
import torch

from deploy.zoo.export import export_reference
from deploy.zoo.training import evaluate_accuracy, train_classifier

ROOT = Path(__file__).resolve().parents[1]
MNIST_FILE = "mnist_5k.csv.gz"
TRAIN_SAMPLES = 4000
SPLIT_SEED = 0


def default_data_dir() -> Path:
    return Path(os.environ.get("COMPRESSOR_SHARED_DATA", ROOT.parent / "shared" / "data"))


def locate_mnist(data_dir: Path | None) -> Path | None:
    """The MNIST-5k file in `data_dir` (default: default_data_dir()); None, after one line on stderr, when absent."""
    path = (data_dir or default_data_dir()) / MNIST_FILE
    if not path.exists():
        print(f"error: MNIST-5k not found at {path} (use --data-dir or COMPRESSOR_SHARED_DATA)", file=sys.stderr)
        return None
    return path


def load_mnist_split(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): pixels scaled to [0, 1], NCHW float32, int64 labels."""
    with gzip.open(path, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = (rows[:, :784] / 255.0).reshape(-1, 1, 28, 28).astype(np.float32)
    y = rows[:, 784].astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))  # the file is sorted by class
    train, test = order[:TRAIN_SAMPLES], order[TRAIN_SAMPLES:]
    return x[train], y[train], x[test], y[test]


def write_split(data, folder: Path) -> tuple[Path, Path]:
    """The split as train.npz / test.npz, the form `compress --data/--val-data` reads."""
    train_npz, test_npz = folder / "train.npz", folder / "test.npz"
    np.savez(train_npz, x=data[0], y=data[1])
    np.savez(test_npz, x=data[2], y=data[3])
    return train_npz, test_npz


def train_dense(name: str, builder, data, *, epochs: int, lr: float, seed: int, path: Path) -> dict:
    """Train `builder()` on the training part, export it to ONNX at `path`, report its test accuracy."""
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the initial weights
        model = builder()
    history = train_classifier(model, x_train, y_train, epochs=epochs, lr=lr, seed=seed)
    export_reference(model.eval(), path, (1, 1, 28, 28), 17, "torchscript")
    return {"model": name, "epochs": epochs, "lr": lr, "seconds": history["seconds"],
            "test_accuracy": evaluate_accuracy(model, x_test, y_test), "onnx": str(path)}
