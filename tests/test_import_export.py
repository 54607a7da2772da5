"""Import -> export on hand-written graphs: weight identity, roles, folding, write-back."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from compressor.onnx_import import load_onnx, load_onnx_proto
from compressor.runtimes.onnxruntime_cpu import onnxruntime_session
from exporters import export_onnx
from onnx_builders import conv_gemm_model


def save(model: onnx.ModelProto, path) -> str:
    onnx.save_model(model, str(path))
    return str(path)


def ort_run(path, x: np.ndarray) -> np.ndarray:
    return onnxruntime_session(path).run(None, {"x": x})[0]


@pytest.mark.parametrize("weights_as", ["initializer", "constant", "subgraph"])
def test_weights_become_named_parameters_with_roles(tmp_path, weights_as):
    module = load_onnx(save(conv_gemm_model(weights_as=weights_as), tmp_path / "m.onnx"))
    params = module.onnx_parameters()
    assert set(params) == {"conv.weight", "conv.bias", "fc.weight", "fc.bias"}
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad for p in params.values())
    assert set(module.weights) == {"conv.weight", "fc.weight"}  # biases train but are not prunable
    conv, fc = module.weights["conv.weight"], module.weights["fc.weight"]
    assert (conv.op_type, conv.layout, conv.reduction_axis, conv.output_axis, conv.shape) == ("Conv", "OIHW", 1, 0, (4, 3, 3, 3))
    assert (fc.op_type, fc.layout, fc.reduction_axis, fc.output_axis, fc.shape) == ("Gemm", "NK", 1, 0, (10, 256))
    # only the four weight tensors train; nothing else is a parameter
    assert len(list(module.parameters())) == 4
    if weights_as == "subgraph":
        assert module.num_nodes == 4  # the Transpose/Identity/Cast/Reshape chains were folded


@pytest.mark.parametrize("weights_as", ["initializer", "constant", "subgraph"])
def test_unchanged_round_trip_matches_onnxruntime(tmp_path, weights_as):
    original = save(conv_gemm_model(weights_as=weights_as), tmp_path / "in.onnx")
    module = load_onnx(original)
    x = np.random.default_rng(1).standard_normal((5, 3, 8, 8)).astype(np.float32)
    want = ort_run(original, x)
    got = module(torch.from_numpy(x)).detach().numpy()
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-5
    result = export_onnx(module, tmp_path / "out.onnx")
    assert result.parity.max_relative_error < 1e-5
    np.testing.assert_allclose(ort_run(result.path, x), want, rtol=1e-6, atol=1e-6)
    exported = onnx.load(str(result.path))
    if weights_as == "subgraph":
        # the chains became initializers of the same names; the biases' Constant nodes stay
        assert [n.op_type for n in exported.graph.node] == ["Constant", "Constant", "Conv", "Relu", "Flatten", "Gemm"]
        assert [n.output[0] for n in exported.graph.node[:2]] == ["conv.bias", "fc.bias"]
        assert {"conv.weight", "fc.weight"} <= {i.name for i in exported.graph.initializer}
        assert set(result.removed_nodes) >= {"Transpose#1", "Identity#2", "Cast#3", "Reshape#6"}
    else:
        source = onnx.load(original)
        assert [(n.name, n.op_type) for n in exported.graph.node if n.op_type != "Constant"] == [
            (n.name, n.op_type) for n in source.graph.node if n.op_type != "Constant"
        ]


def test_export_preserves_graph_and_adds_provenance(tmp_path):
    original = save(conv_gemm_model(opset=17), tmp_path / "in.onnx")
    result = export_onnx(load_onnx(original), tmp_path / "out.onnx")
    src, out = onnx.load(original), onnx.load(str(result.path))
    assert [(n.name, n.op_type, list(n.input), list(n.output)) for n in src.graph.node] == [
        (n.name, n.op_type, list(n.input), list(n.output)) for n in out.graph.node
    ]
    assert src.graph.input == out.graph.input and src.graph.output == out.graph.output
    assert list(src.opset_import) == list(out.opset_import) and src.ir_version == out.ir_version
    meta = {p.key: p.value for p in out.metadata_props}
    assert meta["author"] == "tests"
    assert meta["onnx_compressor.source"] == "in.onnx" and len(meta["onnx_compressor.source_sha256"]) == 64
    for a, b in zip(src.graph.initializer, out.graph.initializer):  # unchanged weights, bit for bit
        assert a.name == b.name and numpy_helper.to_array(a).tobytes() == numpy_helper.to_array(b).tobytes()


@pytest.mark.parametrize("weights_as", ["initializer", "subgraph"])
def test_zeroed_weight_is_exported_as_exact_zeros(tmp_path, weights_as):
    module = load_onnx(save(conv_gemm_model(weights_as=weights_as), tmp_path / "in.onnx"))
    with torch.no_grad():
        module.parameter("conv.weight").zero_()
        fc = module.parameter("fc.weight")
        fc[:, ::2] = 0.0
    expected_fc = fc.detach().numpy().copy()
    result = export_onnx(module, tmp_path / "out.onnx")
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(result.path)).graph.initializer}
    assert np.all(inits["conv.weight"] == 0.0)
    assert np.array_equal(inits["fc.weight"], expected_fc)
    assert np.count_nonzero(inits["fc.weight"]) == expected_fc.size // 2
    assert result.parity.max_relative_error < 1e-5


def test_gradients_reach_every_weight(tmp_path):
    module = load_onnx(save(conv_gemm_model(weights_as="subgraph"), tmp_path / "m.onnx"))
    module.train()
    out = module(torch.randn(2, 3, 8, 8))
    out.square().sum().backward()
    for name, param in module.onnx_parameters().items():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_dynamic_batch(tmp_path):
    module = load_onnx(save(conv_gemm_model(), tmp_path / "m.onnx"))
    for batch in (1, 3, 7):
        assert module(torch.randn(batch, 3, 8, 8)).shape == (batch, 10)


def test_external_data_is_read_and_kept(tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save_model(conv_gemm_model(), str(path), save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    module = load_onnx(path)
    assert module.uses_external_data
    with torch.no_grad():
        module.parameter("fc.weight")[0] = 0.0
    result = export_onnx(module, tmp_path / "out" / "pruned.onnx")
    assert result.data_path is not None and result.data_path.name == "pruned.onnx.data" and result.data_path.exists()
    exported = onnx.load(str(result.path), load_external_data=False)
    assert any(i.data_location == onnx.TensorProto.EXTERNAL for i in exported.graph.initializer)
    assert result.parity.max_relative_error < 1e-5
    reloaded = load_onnx(result.path)
    assert torch.equal(reloaded.parameter("fc.weight"), module.parameter("fc.weight"))


def test_sparse_initializer_variant_is_smaller_and_equal(tmp_path):
    module = load_onnx(save(conv_gemm_model(), tmp_path / "in.onnx"))
    with torch.no_grad():
        w = module.parameter("fc.weight")
        w[torch.rand(w.shape, generator=torch.Generator().manual_seed(0)) < 0.9] = 0.0
    dense = export_onnx(module, tmp_path / "dense.onnx")
    sparse = export_onnx(module, tmp_path / "sparse.onnx", sparse_initializers=True)
    assert sparse.sparse_initializers == 1 and dense.sparse_initializers == 0
    assert sparse.file_bytes < dense.file_bytes
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(ort_run(sparse.path, x), ort_run(dense.path, x))


def test_export_refuses_to_overwrite_input(tmp_path):
    from compressor.errors import ExportError

    path = save(conv_gemm_model(), tmp_path / "m.onnx")
    with pytest.raises(ExportError, match="refusing to overwrite"):
        export_onnx(load_onnx(path), path)


def test_matmul_weight_role_and_bias():
    from onnx import TensorProto, helper

    w = numpy_helper.from_array(np.ones((6, 4), np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
        "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5, 4])], [w, b],
    )
    module = load_onnx_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    info = module.weights["w"]
    assert (info.layout, info.reduction_axis, info.output_axis) == ("KN", 0, 1)
    assert set(module.onnx_parameters()) == {"w", "b"}  # the Add after MatMul is its bias
