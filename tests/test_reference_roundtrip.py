"""Acceptance: the reference networks, exported by both torch.onnx exporters, survive
import -> export with unchanged weights: onnxruntime outputs agree within 1e-5 relative error."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from compressor.onnx_import import load_onnx
from compressor.runtimes.onnxruntime_cpu import onnxruntime_session
from exporters import export_onnx
from exporters.parity import relative_error

MODELS = ["resnet18", "yolo-tiny", "ufld-tiny"]
VARIANTS = [("torchscript", 13), ("torchscript", 17), ("dynamo", 18), ("dynamo", 20)]
TOLERANCE = 1e-5


def ort_outputs(path, x: np.ndarray) -> list[np.ndarray]:
    session = onnxruntime_session(path)
    return session.run(None, {session.get_inputs()[0].name: x})


@pytest.mark.slow
@pytest.mark.parametrize("exporter,opset", VARIANTS, ids=[f"{e}{o}" for e, o in VARIANTS])
@pytest.mark.parametrize("name", MODELS)
def test_round_trip_matches_onnxruntime(reference_onnx, tmp_path, name, exporter, opset):
    source = reference_onnx(name, exporter, opset)
    before = source.read_bytes()
    module = load_onnx(source)
    shape = [2] + [d for d in module.input_shapes[module.input_names[0]][1:]]  # batch 2: the batch is dynamic
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    want = ort_outputs(source, x)

    with torch.no_grad():
        got = module(torch.from_numpy(x))
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, want):
        assert relative_error(g.numpy(), w) < TOLERANCE

    result = export_onnx(module, tmp_path / "roundtrip.onnx", parity_inputs=[torch.from_numpy(x)])
    assert result.parity.max_relative_error < TOLERANCE
    for g, w in zip(ort_outputs(result.path, x), want):
        assert relative_error(g, w) < TOLERANCE
    exported, original = onnx.load(str(result.path)), onnx.load(str(source))
    assert list(exported.opset_import) == list(original.opset_import)
    assert [o.name for o in exported.graph.output] == [o.name for o in original.graph.output]
    assert source.read_bytes() == before  # the input file is untouched


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_every_weight_trains_and_train_mode_equals_eval_mode(reference_onnx, name):
    module = load_onnx(reference_onnx(name, "dynamo", 18))
    shape = [2] + module.input_shapes[module.input_names[0]][1:]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    module.eval()
    with torch.no_grad():
        eval_out = module(x)
    module.train()
    out = module(x)
    first = out[0] if isinstance(out, tuple) else out
    torch.testing.assert_close(first, eval_out[0] if isinstance(eval_out, tuple) else eval_out)
    first.square().mean().backward()
    assert module.weights, "no prunable weight found"
    for weight_name, param in module.weight_parameters().items():
        assert param.grad is not None and torch.count_nonzero(param.grad) > 0, weight_name


def test_prunable_layers_of_resnet18(reference_onnx):
    module = load_onnx(reference_onnx("resnet18", "torchscript", 17))
    ops = [w.op_type for w in module.weights.values()]
    assert ops.count("Conv") == 20 and ops.count("Gemm") == 1  # 17 3x3/7x7 convs, 3 downsample 1x1, fc
    total = sum(w.numel for w in module.weights.values())
    assert total == 11_166_912 + 512_000  # torchvision ResNet-18 conv + fc weights (no BN, no biases)


def test_batchnorm_uses_stored_statistics_when_training(reference_model, tmp_path):
    """Both exporters fold BN into Conv by default; without constant folding the BN nodes stay."""
    model = reference_model("resnet18-tiny")
    path = tmp_path / "bn.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 64, 64),), str(path), opset_version=13, dynamo=False,
                      do_constant_folding=False, input_names=["input"], dynamic_axes={"input": {0: "batch"}})
    graph = onnx.load(str(path)).graph
    bn_nodes = [n for n in graph.node if n.op_type == "BatchNormalization"]
    assert len(bn_nodes) == 20
    module = load_onnx(path)
    scales = {n.input[1] for n in bn_nodes}
    assert scales <= set(module.onnx_parameters())  # BN scale/shift train
    stats = {n.input[3]: module.onnx_buffers()[n.input[3]].clone() for n in bn_nodes}  # running means stay buffers

    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    module.eval()
    with torch.no_grad():
        eval_out = module(x)
    module.train()
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-3)
    out = module(x)
    torch.testing.assert_close(out, eval_out)  # batch statistics are never used
    out.square().mean().backward()
    optimizer.step()
    for name, value in stats.items():
        assert torch.equal(module.onnx_buffers()[name], value), name
    assert all(module.parameter(s).grad is not None for s in scales)
    want = onnxruntime_session(path).run(None, {"input": x.numpy()})[0]
    module.eval()
    result = export_onnx(module, tmp_path / "bn-trained.onnx", parity_inputs=[x])
    assert result.parity.max_relative_error < TOLERANCE
    assert relative_error(onnxruntime_session(result.path).run(None, {"input": x.numpy()})[0], want) > 0  # weights moved
