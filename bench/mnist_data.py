"""MNIST-5k for the benchmarks: the file given on the command line, and dense LeNets trained on its
fixed 4,000 / 1,000 split (deploy.zoo.mnist, the acceptance test's split).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from deploy.zoo.export import export_reference
from deploy.zoo.mnist import mnist_path
from deploy.zoo.training import evaluate_accuracy, train_classifier


def locate_mnist(data_dir: Path | None) -> Path | None:
    """The MNIST-5k file in `data_dir` (default: the shared data folder); None, after one line on stderr, when absent."""
    path = mnist_path(data_dir)
    if not path.exists():
        print(f"error: MNIST-5k not found at {path} (use --data-dir or COMPRESSOR_SHARED_DATA)", file=sys.stderr)
        return None
    return path


def write_split(data, folder: Path) -> tuple[Path, Path]:
    """The split as train.npz / test.npz, the form `compress --data/--val-data` reads."""
    train_npz, test_npz = folder / "train.npz", folder / "test.npz"
    np.savez(train_npz, x=data[0], y=data[1])
    np.savez(test_npz, x=data[2], y=data[3])
    return train_npz, test_npz


def train_dense(name: str, builder, data, *, epochs: int, lr: float, seed: int, path: Path,
                keep_module: bool = False, schedule: str = "constant") -> dict:
    """Train `builder()` on the training part, export it to ONNX at `path`, report its test accuracy
    (with `keep_module`, the trained PyTorch module too, under "module")."""
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the initial weights
        model = builder()
    history = train_classifier(model, x_train, y_train, epochs=epochs, lr=lr, seed=seed, schedule=schedule)
    export_reference(model.eval(), path, (1, 1, 28, 28), 17, "torchscript")
    result = {"model": name, "epochs": epochs, "lr": lr, "schedule": schedule, "seconds": history["seconds"],
              "test_accuracy": evaluate_accuracy(model, x_test, y_test), "onnx": str(path)}
    if keep_module:
        result["module"] = model
    return result
