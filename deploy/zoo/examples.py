"""The embedded example model: a LeNet-5 trained on scikit-learn's digits, exported to ONNX.

``examples/lenet5_digits.onnx`` is what ``compress`` runs on when the user brings no model. This
module builds it, deterministically:

* data: ``sklearn.datasets.load_digits`` (1,797 8x8 images, values 0..16) scaled to [0, 1] and
  upsampled to 28x28 with bilinear interpolation (``align_corners=False``), so the network is the
  MNIST LeNet-5 of the pruning literature. Split 80/20 with ``numpy.random.default_rng(seed)``:
  the first 20% (359 images) of the permutation are the test set, the rest train.
* training: :func:`deploy.zoo.training.train_classifier`, Adam, lr 1e-3, batch 64, 20 epochs, with
  the weight initialisation and the batch order both seeded.
* export: TorchScript exporter, opset 17, input ``input`` ``[batch, 1, 28, 28]``, output
  ``logits`` ``[batch, 10]``, batch dynamic. ``metadata_props`` tell ``compress`` the default
  data (``onnx_compressor.default_data`` = ``digits``, inputs already in [0, 1]) and record the
  dense test accuracy on the split above. Written atomically after an onnxruntime check that
  the file reproduces that accuracy.

CLI::

    python -m deploy.zoo.examples [--out examples/lenet5_digits.onnx] [--seed 0] [--epochs 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
import torch
from torch import nn
from torch.nn import functional as F

from compressor.metadata import METADATA_PREFIX

from .models.lenet import LeNet5
from .training import evaluate_accuracy, train_classifier

__all__ = [
    "ACCURACY_KEY",
    "DEFAULT_OUT",
    "DESCRIPTION_KEY",
    "DIGITS_SIZE",
    "ExampleResult",
    "METADATA",
    "build_example",
    "digits_images",
    "digits_split",
    "main",
    "onnx_accuracy",
]

DEFAULT_OUT = Path("examples/lenet5_digits.onnx")
DIGITS_SIZE = 28
OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# Fixed metadata entries; example_accuracy and example_description are added per build.
METADATA = {
    METADATA_PREFIX + "default_data": "digits",
    METADATA_PREFIX + "default_preprocess": "",  # inputs are already in [0, 1]: no normalisation
    METADATA_PREFIX + "task": "classification",
    METADATA_PREFIX + "num_classes": "10",
}
ACCURACY_KEY = METADATA_PREFIX + "example_accuracy"
DESCRIPTION_KEY = METADATA_PREFIX + "example_description"


def digits_images(size: int = DIGITS_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as ``x`` float32 ``[N, 1, size, size]`` in [0, 1] and ``y`` int64 ``[N]``."""
    from sklearn.datasets import load_digits  # optional heavy import, only when digits are used

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    if size != x.shape[-1]:
        # Bilinear weights are convex, so the values stay in [0, 1].
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.contiguous(), torch.from_numpy(digits.target.astype(np.int64))


def digits_split(
    seed: int = 0, test_fraction: float = 0.2, size: int = DIGITS_SIZE
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``, split exactly as the compress pipeline splits its
    data (`compressor.data.split_indices`: the last ``round(test_fraction * N)`` indices of
    ``numpy.random.default_rng(seed).permutation(N)`` are held out). So `compress` on this example
    with its default --val-fraction and --seed validates on images the model never trained on."""
    from compressor.data import split_indices

    x, y = digits_images(size)
    train, test = split_indices(len(y), test_fraction, seed)
    return x[train], y[train], x[test], y[test]


def onnx_accuracy(path: str | os.PathLike, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of the ONNX classifier at ``path`` in onnxruntime (CPU)."""
    from compressor.runtimes import get_runtime

    session = get_runtime("onnxruntime-cpu").open(path)
    logits = session.run({session.input_names[0]: x.numpy()})[0]
    return float((logits.argmax(axis=1) == y.numpy()).mean())


@dataclass(frozen=True)
class ExampleResult:
    """What :func:`build_example` made."""

    path: Path
    accuracy: float  # dense test accuracy, PyTorch and onnxruntime agree on it
    history: dict  # train_classifier's history
    seconds: float


def _description(seed: int, epochs: int, n_train: int, n_test: int) -> str:
    return (
        f"LeNet-5 (Caffe layout: conv1 20@5x5, pool, conv2 50@5x5, pool, ip1 800->500, ReLU, ip2 500->10) "
        f"trained by `python -m deploy.zoo.examples --seed {seed} --epochs {epochs}` on scikit-learn digits "
        f"(8x8, /16, bilinear to 28x28); split numpy default_rng({seed}).permutation: first {n_test} test, "
        f"{n_train} train; Adam lr 1e-3, batch 64, {epochs} epochs; example_accuracy is on the test split"
    )


def _export(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """TorchScript export (dynamic batch) to ``path``, then add ``metadata`` and run the checker."""
    example = torch.zeros(1, 1, DIGITS_SIZE, DIGITS_SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based exporter"
        torch.onnx.export(
            model.eval(),
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def build_example(
    out: str | os.PathLike = DEFAULT_OUT,
    *,
    seed: int = 0,
    epochs: int = 20,
    log: Callable[[str], None] | None = None,
) -> ExampleResult:
    """Train the example LeNet-5 on digits and write it to ``out`` (see the module docstring).
    The file is staged beside ``out`` and only moved into place once onnxruntime reproduces the
    PyTorch test accuracy, so a failure leaves ``out`` untouched."""
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = digits_split(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LeNet5(num_classes=10, in_channels=1, input_size=DIGITS_SIZE)
    history = train_classifier(model, x_train, y_train, epochs=epochs, batch_size=64, lr=1e-3, seed=seed, log=log)
    accuracy = evaluate_accuracy(model, x_test, y_test)

    metadata = dict(METADATA)
    metadata[ACCURACY_KEY] = f"{accuracy:.4f}"
    metadata[DESCRIPTION_KEY] = _description(seed, epochs, len(y_train), len(y_test))
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as tmp_dir:
        staged = Path(tmp_dir) / dest.name
        _export(model, staged, metadata)
        onnx_acc = onnx_accuracy(staged, x_test, y_test)
        if onnx_acc != accuracy:
            raise RuntimeError(f"onnxruntime accuracy {onnx_acc:.4f} differs from PyTorch's {accuracy:.4f}")
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(staged, 0o666 & ~mask)
        os.replace(staged, dest)
    return ExampleResult(dest, accuracy, history, time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.zoo.examples",
        description="Train the example LeNet-5 on scikit-learn digits and export it to ONNX.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"destination (default {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=0, help="split, initialisation and batch-order seed")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-epoch lines")
    args = parser.parse_args(argv)
    result = build_example(args.out, seed=args.seed, epochs=args.epochs, log=None if args.quiet else print)
    size_kb = result.path.stat().st_size / 1024
    print(
        f"wrote {result.path} ({size_kb:.0f} KiB): LeNet-5 test accuracy {result.accuracy:.4f} "
        f"on digits, {result.seconds:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
