"""The small MNIST ResNet (deploy.zoo.models.small_resnet): size, shapes, 2:4 eligibility, and its ONNX
round trip through the importer."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from compressor.onnx_import import load_onnx
from compressor.runtimes.onnxruntime_cpu import onnxruntime_session
from deploy.zoo.export import export_reference
from deploy.zoo.models import REFERENCE_MODELS
from deploy.zoo.models.small_resnet import SmallResNet

INPUT_SHAPE = (1, 1, 28, 28)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, reference_model):
    path = tmp_path_factory.mktemp("small_resnet") / "small_resnet.onnx"
    export_reference(reference_model("small-resnet"), path, INPUT_SHAPE, 17, "torchscript")
    return path


def test_parameter_count_and_layers():
    model = SmallResNet()
    assert sum(p.numel() for p in model.parameters()) == 174_970
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # stem + 3 stages x 2 blocks x 2 convs + 2 projection shortcuts; one BN after each conv
    assert len(convs) == 15 and len(bns) == 15
    assert [c.out_channels for c in convs if c.kernel_size == (1, 1)] == [32, 64]
    assert tuple(model.fc.weight.shape) == (10, 64)


def test_forward_shape_and_registry(reference_model):
    assert REFERENCE_MODELS["small-resnet"].input_shape == INPUT_SHAPE
    x = torch.randn(3, *INPUT_SHAPE[1:], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = reference_model("small-resnet")(x)
    assert logits.shape == (3, 10)
    assert torch.isfinite(logits).all()
    # the stem halves 28 -> 14, the stages give 14, 7, 4
    features = {}
    model = SmallResNet().eval()
    for name in ("layer1", "layer2", "layer3"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: features.__setitem__(name, o.shape))
    with torch.no_grad():
        model(x)
    assert [features[n][-1] for n in ("layer1", "layer2", "layer3")] == [14, 7, 4]
    assert [features[n][1] for n in ("layer1", "layer2", "layer3")] == [16, 32, 64]


def test_import_round_trip_matches_pytorch(exported, reference_model):
    module = load_onnx(exported).eval()
    x = torch.randn(4, *INPUT_SHAPE[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference_model("small-resnet")(x)
        got = module(x)
    relative = float((got - expected).abs().max() / expected.abs().max())
    assert relative <= 1e-5, relative
    session = onnxruntime_session(exported)
    (ort_out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(ort_out, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_every_conv_but_the_stem_is_2_4_eligible(exported):
    """What the benchmark's 2:4 configuration relies on: 2:4 blocks run along the input-channel
    axis, so every layer but the stem (one input channel) reads a multiple of 4 channels."""
    weights = load_onnx(exported).weights
    infos = list(weights.values())
    assert len(infos) == 16  # 15 convs (BN folded into them by the exporter) + fc
    assert {i.op_type for i in infos[:-1]} == {"Conv"} and infos[-1].op_type in ("Gemm", "MatMul")
    assert infos[0].reduction_size == 1
    assert all(i.reduction_size % 4 == 0 for i in infos[1:]), [(i.name, i.reduction_size) for i in infos]
    assert not any(n.op_type == "BatchNormalization" for n in onnx.load(str(exported)).graph.node)
