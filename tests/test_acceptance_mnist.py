"""Acceptance (issue #3): a LeNet-5 trained by the project on MNIST-5k loses at most 1 point of
held-out test accuracy when pruned to 90% unstructured sparsity (and to 2:4) with 5 epochs of
masked fine-tuning; the report and the ONNX file agree on the achieved sparsity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from compressor import compress
from compressor.runtimes.onnxruntime_cpu import onnxruntime_session
from deploy.zoo.export import export_reference
from deploy.zoo.mnist import load_mnist_split, mnist_path
from deploy.zoo.models.lenet import LeNet5
from deploy.zoo.training import train_classifier

MNIST = mnist_path()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not MNIST.exists(), reason=f"MNIST-5k not found at {MNIST} (set COMPRESSOR_SHARED_DATA)"),
]


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    session = onnxruntime_session(path)
    logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    return float((logits.argmax(1) == y).mean())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    x_train, y_train, x_test, y_test = load_mnist_split(MNIST)
    model = LeNet5()
    train_classifier(model, torch.from_numpy(x_train), torch.from_numpy(y_train), epochs=15, lr=1e-3, seed=0)
    path = root / "lenet5_mnist.onnx"
    export_reference(model.eval(), path, (1, 1, 28, 28), 17, "torchscript")
    np.savez(root / "train.npz", x=x_train, y=y_train)
    return path, root / "train.npz", x_test, y_test


# Unstructured 90% uses one global magnitude threshold: a uniform 90% in every layer leaves conv1
# 50 of its 500 weights and measured 2.0 points lower (docs/benchmarks.md).
@pytest.mark.parametrize("pattern,sparsity,scope", [("unstructured", 0.9, "global"), ("2:4", 0.5, "layer")])
def test_pruned_lenet5_keeps_test_accuracy(trained, tmp_path, conformance_summary, pattern, sparsity, scope):
    model, train, x_test, y_test = trained
    report = compress(model, method="magnitude", pattern=pattern, sparsity=sparsity, scope=scope, data=str(train),
                      epochs=5, keep_ends_dense=False, output=tmp_path / "out", progress=False, latency_runs=5,
                      log=lambda m: None)
    pruned = tmp_path / "out" / "model.onnx"
    dense_acc, pruned_acc = onnx_accuracy(model, x_test, y_test), onnx_accuracy(pruned, x_test, y_test)
    conformance_summary.append(
        f"MNIST-5k LeNet-5, magnitude {pattern}: held-out accuracy {dense_acc:.2%} dense -> {pruned_acc:.2%} "
        f"pruned at {report['sparsity']:.2%} sparsity, {scope} scope"
    )
    assert dense_acc >= 0.95
    assert dense_acc - pruned_acc <= 0.01
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(pruned)).graph.initializer}
    names = [layer["name"] for layer in report["layers"]]
    zeros = sum(int((weights[n] == 0).sum()) for n in names)
    total = sum(weights[n].size for n in names)
    assert report["sparsity"] == pytest.approx(zeros / total, abs=1e-12)
    assert report["sparsity"] == pytest.approx(sparsity, abs=1e-3)
    if pattern == "2:4":
        for layer in report["layers"]:
            if layer["target"] is None:  # ineligible (conv1: one input channel), left dense and listed
                assert layer["note"]
                continue
            groups = np.moveaxis(weights[layer["name"]], 1, -1).reshape(-1, 4)  # Conv OIHW / Gemm transB=1: axis 1
            assert np.all((groups == 0).sum(axis=1) >= 2), layer["name"]
