"""The float16 writer (exporters/fp16.py): the copy's types, its outputs against the float32
original, clamping, the float32 islands an operator's schema asks for, and its refusals.

The float16 copies run in onnxruntime's CPU provider: onnxruntime 1.31 has CPU float16 kernels
for every operator these models hold (Conv, BatchNormalization, Relu, MaxPool, GlobalAveragePool,
Gemm, MatMul, Resize linear and nearest, Add/Sub/Mul/Pow/Sum, Sigmoid, Concat, Split, Slice,
Reshape, Flatten, Transpose, ConstantOfShape, EyeLike, Cast), but none for RandomNormal. ONNX's
ReferenceEvaluator is the second opinion for the small hand-built models, and the only one for
that RandomNormal.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from compressor.errors import ExportError, UnsupportedModelError
from compressor.files import sha256_file
from compressor.runtimes.onnxruntime_cpu import onnxruntime_session
from exporters.fp16 import FP16_MAX, to_float16, write_float16
from tests.test_tensorrt import EXAMPLE, if_model

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16
RNG = np.random.default_rng(0)


def model_of(nodes, inputs, outputs, inits, opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def weight(name, *shape, scale=0.3):
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def conv_bn_relu_gemm():
    inits = [weight("w", 8, 3, 3, 3), weight("b", 8),
             numpy_helper.from_array(RNG.uniform(0.5, 1.5, 8).astype(np.float32), "gamma"), weight("beta", 8),
             weight("mean", 8, scale=0.1), numpy_helper.from_array(RNG.uniform(0.5, 2, 8).astype(np.float32), "var"),
             weight("fc_w", 8 * 4 * 4, 10, scale=0.05), weight("fc_b", 10),
             weight("mm", 10, 6), numpy_helper.from_array(np.array([0, -1], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Reshape", ["p", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["g"]),
             helper.make_node("MatMul", ["g", "mm"], ["m"]),
             helper.make_node("Constant", [], ["half"], value_float=0.5),
             helper.make_node("Mul", ["m", "half"], ["y"])]
    return model_of(nodes, [helper.make_tensor_value_info("x", F32, [1, 3, 8, 8])],
                    [helper.make_tensor_value_info("y", F32, [1, 6])], inits)


def resize_model():
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"), weight("w", 4, 2, 1, 1)]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Resize", ["c", "", "scales"], ["y"], mode="linear")]
    return model_of(nodes, [helper.make_tensor_value_info("x", F32, [1, 2, 5, 5])],
                    [helper.make_tensor_value_info("y", F32, [1, 4, 10, 10])], inits)


def run_ort(model, feeds):
    return onnxruntime_session(model.SerializeToString()).run(None, feeds)


def assert_close_fp16(got, ref, rtol=1e-2):
    """fp16 has an 11-bit significand (~5e-4 relative); a few layers make it ~1e-3, under 1e-2."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape and np.isfinite(got).all()
    assert np.abs(got - ref).max() <= rtol * np.abs(ref).max() + 1e-3, (np.abs(got - ref).max(), np.abs(ref).max())


def elem_types(values):
    return [v.type.tensor_type.elem_type for v in values]


def test_conv_bn_relu_gemm_matmul_constant():
    model = conv_bn_relu_gemm()
    original = model.SerializeToString()
    result = to_float16(model)
    half = result.model
    assert model.SerializeToString() == original  # the input proto is left as it was
    types = {t.name: t.data_type for t in half.graph.initializer}
    assert types.pop("shape") == TensorProto.INT64 and set(types.values()) == {F16}
    assert result.converted == 10 and result.clamped == 0 and result.kept_float32 == ()
    constant = next(n for n in half.graph.node if n.op_type == "Constant")
    assert constant.attribute[0].name == "value" and constant.attribute[0].t.data_type == F16
    # I/O keep float32 and their names; Casts at the boundary
    assert [v.name for v in half.graph.input] == ["x"] and elem_types(half.graph.input) == [F32]
    assert [v.name for v in half.graph.output] == ["y"] and elem_types(half.graph.output) == [F32]
    assert half.graph.node[0].op_type == "Cast" and half.graph.node[0].input[0] == "x"
    assert half.graph.node[-1].op_type == "Cast" and half.graph.node[-1].output[0] == "y"
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    ref = run_ort(model, {"x": x})[0]
    got = run_ort(half, {"x": x})[0]
    assert got.dtype == np.float32
    assert_close_fp16(got, ref)
    assert_close_fp16(ReferenceEvaluator(half).run(None, {"x": x})[0], ref)
    assert not np.array_equal(got, ref)  # it did compute in float16


def test_resize_scales_stay_float32():
    model = resize_model()
    result = to_float16(model)
    half = result.model
    types = {t.name: t.data_type for t in half.graph.initializer}
    assert types == {"scales": F32, "w": F16}  # Resize's `scales` allows only tensor(float)
    assert result.kept_float32 == ("scales",)
    x = RNG.standard_normal((1, 2, 5, 5)).astype(np.float32)
    ref = run_ort(model, {"x": x})[0]
    assert_close_fp16(run_ort(half, {"x": x})[0], ref)
    assert_close_fp16(ReferenceEvaluator(half).run(None, {"x": x})[0], ref)


def test_a_constant_read_only_as_float32_stays_float32():
    nodes = [helper.make_node("Constant", [], ["scales"], value=numpy_helper.from_array(np.array([1, 1, 4 / 3, 4 / 3], np.float32))),
             helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Resize", ["r", "", "scales"], ["y"], mode="nearest")]
    model = model_of(nodes, [helper.make_tensor_value_info("x", F32, [1, 1, 3, 3])],
                     [helper.make_tensor_value_info("y", F32, [1, 1, 4, 4])], [])
    result = to_float16(model)
    constant = result.model.graph.node[0]
    assert constant.op_type == "Constant" and constant.attribute[0].t.data_type == F32  # 4/3 not rounded to fp16
    assert [n.op_type for n in result.model.graph.node] == ["Constant", "Cast", "Relu", "Resize", "Cast"]
    assert result.kept_float32 == ("scales",) and result.converted == 0
    x = RNG.standard_normal((1, 1, 3, 3)).astype(np.float32)
    assert_close_fp16(run_ort(result.model, {"x": x})[0], run_ort(model, {"x": x})[0])


def test_a_float32_only_input_gets_a_cast_back_and_a_shared_constant_a_float32_copy():
    # NonMaxSuppression takes tensor(float) boxes and scores only; Mul before it computes in fp16
    inits = [numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array([5], np.int64), "k"),
             numpy_helper.from_array(np.array([0.5], np.float32), "iou")]
    nodes = [helper.make_node("Mul", ["boxes", "one"], ["b"]),
             helper.make_node("Mul", ["scores", "one"], ["s"]),
             helper.make_node("Mul", ["iou", "one"], ["iou2"]),  # `iou` is asked for as fp16 here, fp32 below
             helper.make_node("NonMaxSuppression", ["b", "s", "k", "iou"], ["sel"]),
             helper.make_node("Relu", ["iou2"], ["iou_out"])]
    model = model_of(nodes, [helper.make_tensor_value_info("boxes", F32, [1, 6, 4]),
                             helper.make_tensor_value_info("scores", F32, [1, 1, 6])],
                     [helper.make_tensor_value_info("sel", TensorProto.INT64, [None, 3]),
                      helper.make_tensor_value_info("iou_out", F32, [1])], inits)
    result = to_float16(model)
    half = result.model
    nms = next(n for n in half.graph.node if n.op_type == "NonMaxSuppression")
    producers = {o: n for n in half.graph.node for o in n.output}
    for name in nms.input[:2]:
        assert producers[name].op_type == "Cast" and producers[name].attribute[0].i == F32
    inits16 = {t.name: t.data_type for t in half.graph.initializer}
    assert inits16["iou"] == F16 and inits16[nms.input[3]] == F32 and nms.input[3] == "iou__fp32"
    assert set(result.kept_float32) == {"b", "s", "iou"}
    boxes = np.array([[[0, 0, 1, 1], [0, 0.1, 1, 1.1], [0, -0.1, 1, 0.9], [0, 10, 1, 11], [0, 10.1, 1, 11.1],
                       [0, 100, 1, 101]]], np.float32)
    scores = np.array([[[0.9, 0.75, 0.6, 0.95, 0.5, 0.3]]], np.float32)
    ref = run_ort(model, {"boxes": boxes, "scores": scores})
    got = run_ort(half, {"boxes": boxes, "scores": scores})
    np.testing.assert_array_equal(got[0], ref[0])
    assert ref[0].tolist() == [[0, 0, 3], [0, 0, 0], [0, 0, 5]]
    assert got[1].dtype == np.float32 and got[1].tolist() == [0.5]


def dtype_model(noise: bool):
    inits = [numpy_helper.from_array(np.array([2, 3], np.int64), "shape")]
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["zeros"]),  # float32 zero by default
             helper.make_node("ConstantOfShape", ["shape"], ["fives"],
                              value=numpy_helper.from_array(np.array([5.0], np.float32))),
             helper.make_node("Cast", ["i"], ["fi"], to=F32),
             helper.make_node("EyeLike", ["zeros"], ["eye"], dtype=F32)]
    terms = ["zeros", "fives", "fi", "eye"]
    if noise:  # float32 by default, too
        nodes.append(helper.make_node("RandomNormal", [], ["noise"], shape=[2, 3], scale=0.0))
        terms.append("noise")
    nodes.append(helper.make_node("Sum", terms, ["y"]))
    return model_of(nodes, [helper.make_tensor_value_info("i", TensorProto.INT32, [2, 3])],
                    [helper.make_tensor_value_info("y", F32, [2, 3])], inits)


def test_dtype_driven_outputs_follow():
    half = to_float16(dtype_model(noise=True)).model
    attrs = {n.output[0]: {a.name: a for a in n.attribute} for n in half.graph.node}
    assert attrs["zeros"]["value"].t.data_type == F16 and attrs["fives"]["value"].t.data_type == F16
    assert attrs["fi"]["to"].i == F16 and attrs["eye"]["dtype"].i == F16 and attrs["noise"]["dtype"].i == F16
    i = np.arange(6, dtype=np.int32).reshape(2, 3)
    expected = i + 5 + np.eye(2, 3)
    got = ReferenceEvaluator(half).run(None, {"i": i})[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    # onnxruntime 1.31's CPU provider has no float16 RandomNormal kernel: the rest runs there
    got = run_ort(to_float16(dtype_model(noise=False)).model, {"i": i})[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_out_of_range_values_are_clamped_and_counted():
    big = numpy_helper.from_array(np.array([1e6, -np.inf, 1e-9, 0.25, 70000.0], np.float32), "big")
    model = model_of([helper.make_node("Add", ["x", "big"], ["y"])],
                     [helper.make_tensor_value_info("x", F32, [5])], [helper.make_tensor_value_info("y", F32, [5])],
                     [big])
    result = to_float16(model)
    assert result.clamped == 3 and result.underflowed == 1
    values = numpy_helper.to_array(result.model.graph.initializer[0])
    assert values.dtype == np.float16 and np.isfinite(values).all()
    assert values.tolist() == [FP16_MAX, -FP16_MAX, 0.0, 0.25, FP16_MAX]
    got = run_ort(result.model, {"x": np.zeros(5, np.float32)})[0]
    assert got.tolist() == [65504.0, -65504.0, 0.0, 0.25, 65504.0]


def test_without_keep_io_types_the_io_is_float16():
    model = resize_model()
    half = to_float16(model, keep_io_types=False).model
    assert elem_types(half.graph.input) == [F16] and elem_types(half.graph.output) == [F16]
    assert not any(n.op_type == "Cast" for n in half.graph.node)
    x = RNG.standard_normal((1, 2, 5, 5)).astype(np.float32)
    got = run_ort(half, {"x": x.astype(np.float16)})[0]
    assert got.dtype == np.float16
    assert_close_fp16(got, run_ort(model, {"x": x})[0])


def test_refusals_are_one_line():
    with pytest.raises(UnsupportedModelError, match=r"^float16 conversion: subgraphs are not converted \(If node 'y'\)$"):
        to_float16(if_model())
    function = helper.make_function("local", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                                    [helper.make_opsetid("", 17)])
    with_function = model_of([helper.make_node("Twice", ["x"], ["y"], domain="local")],
                             [helper.make_tensor_value_info("x", F32, [2])], [helper.make_tensor_value_info("y", F32, [2])],
                             [])
    with_function.opset_import.append(helper.make_opsetid("local", 1))
    with_function.functions.append(function)
    with pytest.raises(UnsupportedModelError, match=r"^float16 conversion: model-local functions are not converted \(Twice\)"):
        to_float16(with_function)
    custom = model_of([helper.make_node("FusedGemm", ["x", "x"], ["y"], domain="com.microsoft")],
                      [helper.make_tensor_value_info("x", F32, [2, 2])], [helper.make_tensor_value_info("y", F32, [2, 2])], [])
    custom.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(UnsupportedModelError, match=r"no ONNX schema for FusedGemm \(domain 'com.microsoft'\)"):
        to_float16(custom)


def test_write_float16_the_lenet_example(tmp_path):
    before = sha256_file(EXAMPLE)
    dst = tmp_path / "lenet.fp16.onnx"
    result = write_float16(EXAMPLE, dst)
    assert sha256_file(EXAMPLE) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet.fp16.onnx"]  # no temporary left beside it
    half = onnx.load(str(dst))
    onnx.checker.check_model(half, full_check=True)
    original = onnx.load(str(EXAMPLE))
    floats = [t for t in original.graph.initializer if t.data_type == F32]
    assert result.converted == len(floats) > 0 and result.clamped == 0
    assert all(t.data_type == F16 for t in half.graph.initializer if t.name in {f.name for f in floats})
    assert elem_types(half.graph.input) == elem_types(original.graph.input) == [F32]
    assert elem_types(half.graph.output) == [F32]
    x = np.random.default_rng(1).random((4, 1, 28, 28), np.float32)
    name = original.graph.input[0].name
    ref = run_ort(original, {name: x})[0]
    got = onnxruntime_session(str(dst)).run(None, {name: x})[0]
    assert_close_fp16(got, ref)
    assert (got.argmax(1) == ref.argmax(1)).all()
    with pytest.raises(ExportError, match="must not replace its source"):
        write_float16(dst, dst)


@pytest.mark.parametrize("name", ["small-resnet", "ufld-tiny", "yolo-tiny"])
def test_zoo_models_exported_by_torch(name, reference_onnx, tmp_path):
    from deploy.zoo.models import REFERENCE_MODELS

    src = reference_onnx(name, "torchscript", 17)
    before = sha256_file(src)
    dst = tmp_path / f"{name}.fp16.onnx"
    result = write_float16(src, dst)
    assert sha256_file(src) == before and result.clamped == 0
    original, half = onnx.load(str(src)), onnx.load(str(dst))
    assert all(t.data_type != F32 for t in half.graph.initializer if t.name not in result.kept_float32)
    assert elem_types(half.graph.input) == [F32] and set(elem_types(half.graph.output)) == {F32}
    x = np.random.default_rng(2).standard_normal(REFERENCE_MODELS[name].input_shape).astype(np.float32)
    feeds = {original.graph.input[0].name: x}
    for got, ref in zip(onnxruntime_session(str(dst)).run(None, feeds), run_ort(original, feeds)):
        assert_close_fp16(got, ref)
