"""Exporter fidelity on third-party files: IR 3 (initializers as graph inputs), Constant-node
weights, external data, the full onnx.checker, atomic replacement and onnxruntime messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from compressor.errors import ExportError
from compressor.onnx_import import load_onnx, load_onnx_proto
from compressor.runtimes.onnxruntime_cpu import onnxruntime_session
from compressor.runtimes.ort_errors import ort_error_message
from exporters import export_onnx, stored_tensors
from onnx_builders import conv_gemm_model

LIGHT_DIR = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
# the big ones write 250-600 MB of weights once their ConstantOfShape subgraphs are folded
_LIGHT_SLOW = {"bvlc_alexnet", "vgg19", "zfnet512", "densenet121", "resnet50", "inception_v1", "inception_v2"}
LIGHT_MODELS = [
    pytest.param(name, marks=[pytest.mark.slow] if name in _LIGHT_SLOW else [])
    for name in sorted(p.stem.removeprefix("light_") for p in LIGHT_DIR.glob("light_*.onnx"))
]


def save(model: onnx.ModelProto, path) -> Path:
    onnx.save_model(model, str(path))
    return Path(path)


def assert_stored_like_module(model: onnx.ModelProto, module, base_dir="") -> None:
    """Every trainable tensor of the module is stored in `model` under its ONNX name, bit for bit."""
    stored = stored_tensors(model, base_dir)
    for name, param in module.onnx_parameters().items():
        assert np.array_equal(stored[name], param.detach().numpy()), name


def assert_initializers_are_inputs(graph: onnx.GraphProto) -> None:
    """The IR < 4 rule, with the declared type and shape of each initializer."""
    inputs = {vi.name: vi.type.tensor_type for vi in graph.input}
    for init in graph.initializer:
        assert init.name in inputs, init.name
        declared = inputs[init.name]
        assert declared.elem_type == init.data_type, init.name
        assert [d.dim_value for d in declared.shape.dim] == list(init.dims), init.name


# ---- model-zoo files: IR 3, opset 9, weights computed by ConstantOfShape subgraphs -----------
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_round_trip_passes_full_check_and_parity(tmp_path, name):
    assert LIGHT_DIR.is_dir(), "the onnx package ships its model-zoo test files here"
    source = LIGHT_DIR / f"light_{name}.onnx"
    original = onnx.load(str(source))
    assert original.ir_version == 3
    module = load_onnx(source)
    gen = torch.Generator().manual_seed(0)
    # the files hold one constant everywhere, which saturates the softmax: random weights of a
    # variance that keeps activations in range (half pruned) make the parity figure mean something
    with torch.no_grad():
        for name, param in module.onnx_parameters().items():
            info = module.weights.get(name)
            if info is None:
                param.mul_(0.5 + torch.rand(param.shape, generator=gen))
            else:
                fan_in = param.numel() // param.shape[info.output_axis]
                param.copy_(torch.randn(param.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                param.view(-1)[::2] = 0.0
        x = torch.randn(1, 3, 224, 224, generator=gen)
        y = module(x)
    assert float(y.max()) > 1.05 * float(y.min())  # not a constant output
    result = export_onnx(module, tmp_path / "out.onnx", parity_inputs=[x])
    onnx.checker.check_model(str(result.path), full_check=True)
    assert result.warnings == []
    assert result.parity.max_relative_error < 1e-4
    exported = onnx.load(str(result.path))
    assert exported.ir_version == 3 and list(exported.opset_import) == list(original.opset_import)
    graph = exported.graph
    assert_initializers_are_inputs(graph)
    # the only inputs without an initializer are the model's data inputs (no "__SHAPE" leftovers)
    assert [vi.name for vi in graph.input if vi.name not in {i.name for i in graph.initializer}] == module.input_names
    # the subgraphs computing trainable tensors became initializers; those computing buffers
    # (BatchNormalization statistics) stay as they were
    assert not {out for n in graph.node for out in n.output} & set(module.onnx_parameters())
    assert len(graph.node) == len(original.graph.node) - len(result.removed_nodes)
    assert {n.op_type for n in original.graph.node if n.name in result.removed_nodes or not n.name} >= {"ConstantOfShape"}
    assert_stored_like_module(exported, module)
    reloaded = load_onnx(result.path)
    assert reloaded.input_names == module.input_names
    with torch.no_grad():
        np.testing.assert_allclose(reloaded(x).numpy(), y.numpy(), rtol=1e-5, atol=1e-6)


# ---- a hand-made IR 3 model ------------------------------------------------------------------
def ir3_model() -> onnx.ModelProto:
    """IR 3 / opset 9: the conv weight is Constant -> Reshape (with an initializer as the shape),
    the bias an initializer; both initializers are listed as graph inputs, as IR 3 requires;
    value_info for a tensor of the weight chain and for a live one."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["w_flat"], name="w_const", value=numpy_helper.from_array(w.reshape(-1), "w_flat_value")),
        helper.make_node("Reshape", ["w_flat", "w_shape"], ["conv.weight"], name="w_reshape"),
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    inits = [numpy_helper.from_array(np.array(w.shape, np.int64), "w_shape"), numpy_helper.from_array(b, "conv.bias")]
    graph = helper.make_graph(
        nodes, "ir3",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
         helper.make_tensor_value_info("w_shape", TensorProto.INT64, [4]),
         helper.make_tensor_value_info("conv.bias", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        inits,
        value_info=[helper.make_tensor_value_info("w_flat", TensorProto.FLOAT, [108]),
                    helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 3
    onnx.checker.check_model(model, full_check=True)
    return model


def test_ir3_model_lists_initializers_as_inputs_and_drops_dead_entries(tmp_path):
    module = load_onnx(save(ir3_model(), tmp_path / "in.onnx"))
    with torch.no_grad():
        module.parameter("conv.weight")[:2] = 0.0
    result = export_onnx(module, tmp_path / "out.onnx")
    onnx.checker.check_model(str(result.path), full_check=True)
    assert result.warnings == [] and result.parity.max_relative_error < 1e-5
    graph = onnx.load(str(result.path)).graph
    assert [n.name for n in graph.node] == ["conv", "relu"]
    assert sorted(result.removed_nodes) == ["w_const", "w_reshape"]
    # w_shape only fed the removed Reshape: gone from initializers and inputs alike
    assert sorted(i.name for i in graph.initializer) == ["conv.bias", "conv.weight"]
    assert [vi.name for vi in graph.input] == ["x", "conv.bias", "conv.weight"]
    assert_initializers_are_inputs(graph)
    assert [vi.name for vi in graph.value_info] == ["c"]  # w_flat no longer exists
    weight = {i.name: numpy_helper.to_array(i) for i in graph.initializer}["conv.weight"]
    assert np.count_nonzero(weight[:2]) == 0 and np.count_nonzero(weight[2:]) == weight[2:].size
    assert load_onnx(result.path).input_names == ["x"]


# ---- weights held by Constant nodes (paddle2onnx) ----------------------------------------------
def paddle_like_model() -> onnx.ModelProto:
    """conv_gemm_model with every weight a Constant node; fc.bias in the value_floats form."""
    model = conv_gemm_model(weights_as="constant")
    node = next(n for n in model.graph.node if n.output[0] == "fc.bias")
    values = numpy_helper.to_array(node.attribute[0].t)
    del node.attribute[:]
    node.attribute.append(helper.make_attribute("value_floats", values.tolist()))
    onnx.checker.check_model(model, full_check=True)
    return model


def test_constant_node_weights_are_written_back_into_their_nodes(tmp_path):
    original = paddle_like_model()
    module = load_onnx(save(original, tmp_path / "in.onnx"))
    with torch.no_grad():
        module.parameter("fc.weight")[:, ::2] = 0.0
        module.parameter("conv.weight")[0] = 0.0
        module.parameter("fc.bias").add_(1.0)
    result = export_onnx(module, tmp_path / "out.onnx")
    onnx.checker.check_model(str(result.path), full_check=True)
    assert result.removed_nodes == [] and result.parity.max_relative_error < 1e-5
    exported = onnx.load(str(result.path))
    # same nodes, same order, no initializers added
    assert [(n.op_type, list(n.output)) for n in exported.graph.node] == [(n.op_type, list(n.output)) for n in original.graph.node]
    assert len(exported.graph.initializer) == 0
    constants = {n.output[0]: n.attribute[0] for n in exported.graph.node if n.op_type == "Constant"}
    fc = numpy_helper.to_array(constants["fc.weight"].t)
    assert constants["fc.weight"].t.name == "fc.weight_value"
    assert np.count_nonzero(fc) == fc.size // 2 and np.all(fc[:, ::2] == 0.0)
    assert constants["fc.bias"].name == "value_floats"  # kept in the form the file used
    np.testing.assert_array_equal(np.array(constants["fc.bias"].floats, np.float32), module.parameter("fc.bias").detach().numpy())
    assert_stored_like_module(exported, module)


def test_stored_tensors_reads_every_storage_form():
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["t"], value=numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3))),
         helper.make_node("Constant", [], ["f"], value_float=2.5),
         helper.make_node("Constant", [], ["fs"], value_floats=[1.0, -1.0]),
         helper.make_node("Constant", [], ["i"], value_int=7),
         helper.make_node("Constant", [], ["is"], value_ints=[3, 4]),
         helper.make_node("Identity", ["init"], ["y"])],
        "forms", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array([5.0, 6.0], np.float32), "init")],
        sparse_initializer=[helper.make_sparse_tensor(
            numpy_helper.from_array(np.array([9.0], np.float32), "sp"),
            numpy_helper.from_array(np.array([2], np.int64), "sp_idx"), [4])],
    )
    stored = stored_tensors(helper.make_model(graph))
    assert set(stored) == {"t", "f", "fs", "i", "is", "init", "sp"}
    np.testing.assert_array_equal(stored["t"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert stored["f"].dtype == np.float32 and float(stored["f"]) == 2.5
    np.testing.assert_array_equal(stored["fs"], np.array([1.0, -1.0], np.float32))
    assert stored["i"].dtype == np.int64 and int(stored["i"]) == 7
    np.testing.assert_array_equal(stored["is"], [3, 4])
    np.testing.assert_array_equal(stored["sp"], [0.0, 0.0, 9.0, 0.0])
    coo = helper.make_sparse_tensor(  # [NNZ, rank] coordinates
        numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "coo"),
        numpy_helper.from_array(np.array([[0, 1], [1, 2]], np.int64), "coo_idx"), [2, 3])
    graph.sparse_initializer.append(coo)
    np.testing.assert_array_equal(stored_tensors(helper.make_model(graph))["coo"], [[0, 1, 0], [0, 0, 2]])


def test_sparse_variant_of_constant_weights_uses_sparse_value(tmp_path):
    module = load_onnx(save(paddle_like_model(), tmp_path / "in.onnx"))
    with torch.no_grad():
        w = module.parameter("fc.weight")
        w[torch.rand(w.shape, generator=torch.Generator().manual_seed(0)) < 0.9] = 0.0
    dense = export_onnx(module, tmp_path / "dense.onnx")
    sparse = export_onnx(module, tmp_path / "sparse.onnx", sparse_initializers=True)
    assert sparse.file_bytes < dense.file_bytes and sparse.warnings == []
    node = next(n for n in onnx.load(str(sparse.path)).graph.node if n.output[0] == "fc.weight")
    assert node.attribute[0].name == "sparse_value"
    assert sparse.parity.max_relative_error < 1e-5
    assert_stored_like_module(onnx.load(str(sparse.path)), module)


# ---- external data -----------------------------------------------------------------------------
@pytest.mark.parametrize("weights_as", ["initializer", "constant"])
def test_external_data_round_trip_passes_full_check(tmp_path, weights_as):
    source = tmp_path / "ext.onnx"
    onnx.save_model(
        conv_gemm_model(weights_as=weights_as), str(source), save_as_external_data=True,
        location="ext.onnx.data", size_threshold=0, convert_attribute=True,
    )
    module = load_onnx(source)
    assert module.uses_external_data
    with torch.no_grad():
        module.parameter("fc.weight")[:5] = 0.0
    target = tmp_path / "out" / "pruned.onnx"
    export_onnx(module, target)
    with torch.no_grad():
        module.parameter("conv.weight")[0] = 0.0
    result = export_onnx(module, target)  # replaces the first export, model and data file together
    assert result.data_path == target.parent / "pruned.onnx.data" and result.data_path.exists()
    onnx.checker.check_model(str(target), full_check=True)
    assert result.warnings == [] and result.parity.max_relative_error < 1e-5
    assert sorted(p.name for p in target.parent.iterdir()) == ["pruned.onnx", "pruned.onnx.data"]
    bare = onnx.load(str(target), load_external_data=False)
    stored = [i for i in bare.graph.initializer if i.name == "fc.weight"] or [
        a.t for n in bare.graph.node for a in n.attribute if n.output[0] == "fc.weight"
    ]
    assert stored[0].data_location == TensorProto.EXTERNAL
    assert_stored_like_module(bare, module, base_dir=target.parent)
    assert torch.equal(load_onnx(target).parameter("fc.weight"), module.parameter("fc.weight"))


# ---- the full check, and its fallback when the input itself fails it ---------------------------
def bad_value_info_model() -> onnx.ModelProto:
    """Runs in onnxruntime and passes the basic check, but declares a wrong shape for 'r' (as
    some converters do), so strict shape inference rejects it."""
    model = conv_gemm_model()
    model.graph.value_info.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", 5, 8, 8]))
    onnx.checker.check_model(model)
    with pytest.raises(onnx.shape_inference.InferenceError):
        onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("from_file", [True, False])
def test_input_failing_full_check_falls_back_to_basic_check_with_warning(tmp_path, from_file):
    model = bad_value_info_model()
    module = load_onnx(save(model, tmp_path / "in.onnx")) if from_file else load_onnx_proto(model)
    result = export_onnx(module, tmp_path / "out.onnx")
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert "input model itself fails" in warning and "differ in dimension 1" in warning and "\n" not in warning
    assert result.to_dict()["warnings"] == result.warnings
    assert result.parity.max_relative_error < 1e-5
    onnx.checker.check_model(str(result.path))


def test_export_failing_full_check_of_a_valid_input_is_an_error(tmp_path):
    source = save(conv_gemm_model(), tmp_path / "in.onnx")
    module = load_onnx(source)
    # stands in for an exporter bug: the graph copy it writes from no longer type-checks
    module.onnx_model.graph.value_info.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", 5, 8, 8]))
    with pytest.raises(ExportError, match=r"out\.onnx: the exported model fails onnx.checker \(full check\): .*differ in dimension 1") as err:
        export_onnx(module, tmp_path / "out.onnx")
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.onnx"]


# ---- atomic replacement ------------------------------------------------------------------------
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("failure", ["parity raises", "onnxruntime rejects the inputs", "checker"])
def test_failed_export_leaves_existing_file_untouched(tmp_path, monkeypatch, failure):
    source = tmp_path / "src" / "m.onnx"
    source.parent.mkdir()
    onnx.save_model(conv_gemm_model(), str(source), save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    module = load_onnx(source)
    out = tmp_path / "out"
    first = export_onnx(module, out / "model.onnx")
    assert first.data_path is not None
    before = _snapshot(out)
    assert set(before) == {"model.onnx", "model.onnx.data"}

    with torch.no_grad():
        module.parameter("fc.weight").zero_()
    kwargs = {}
    if failure == "parity raises":
        def broken_parity(module, path, **_):
            raise ExportError(f"onnxruntime and the module disagree on {path}")
        monkeypatch.setattr("exporters.onnx_export.check_parity", broken_parity)
    elif failure == "onnxruntime rejects the inputs":
        kwargs["parity_inputs"] = [torch.randn(2, 4, 8, 8)]
    else:
        module.onnx_model.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(ExportError) as err:
        export_onnx(module, out / "model.onnx", **kwargs)
    message = str(err.value)
    assert "\n" not in message and ".export-" not in message  # names the target, not the staging file
    assert str(out / "model.onnx") in message
    assert _snapshot(out) == before  # byte-identical, and no temporary files left


# ---- onnxruntime messages ----------------------------------------------------------------------
def test_ort_message_keeps_the_cause_on_one_line():
    text = ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: x for the following indices\n"
            " index: 0 Got: 8 Expected: 1\n Please fix either the inputs or the model.")
    assert ort_error_message(RuntimeError(text)) == "onnxruntime: invalid dimensions for input x: index 0 got 8, expected 1"
    other = "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Foo(1) node\n with name 'foo'"
    assert ort_error_message(other) == "onnxruntime: NOT_IMPLEMENTED: Could not find an implementation for Foo(1) node; with name 'foo'"
    plain = "Required inputs (['x']) are missing from input feed (['y'])."
    assert ort_error_message(ValueError(plain)) == f"onnxruntime: {plain}"
    assert len(ort_error_message("[ONNXRuntimeError] : 1 : FAIL : " + "x" * 2000)) <= 500


def test_ort_message_from_a_real_session(tmp_path):
    session = onnxruntime_session(save(conv_gemm_model(), tmp_path / "m.onnx"))
    with pytest.raises(Exception) as err:
        session.run(None, {"x": np.zeros((2, 4, 8, 8), np.float32)})
    assert "\n" in str(err.value)  # what the helper exists for
    assert ort_error_message(err.value) == "onnxruntime: invalid dimensions for input x: index 1 got 4, expected 3"
