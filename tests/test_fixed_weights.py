"""find_fixed_weights: non-learned weights are found from their values, learned ones never are."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compressor.onnx_import import load_onnx, load_onnx_proto
from compressor.sparsity.fixed_weights import find_fixed_weights

LIGHT_ZOO = sorted(glob.glob(str(Path(onnx.__file__).parent / "backend/test/data/light/*.onnx")))


def conv_chain(weights: dict[str, np.ndarray], c_in: int, size: int = 8, groups: dict[str, int] | None = None) -> onnx.ModelProto:
    """x[N, c_in, size, size] through one Conv per weight, in order (same padding)."""
    groups = groups or {}
    nodes, inits, x = [], [], "x"
    for i, (name, w) in enumerate(weights.items()):
        inits.append(numpy_helper.from_array(w.astype(np.float32), name))
        k = w.shape[2]
        nodes.append(helper.make_node("Conv", [x, name], [f"y{i}"], name=f"conv{i}", kernel_shape=[k, k],
                                      pads=[k // 2] * 4, group=groups.get(name, 1)))
        x = f"y{i}"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c_in, size, size])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def dfl_model(reg_max: int = 16) -> onnx.ModelProto:
    """YOLOv8's decoding tail: box logits [N, 4*reg_max, A] -> Reshape [N, 4, reg_max, A] ->
    Transpose -> Softmax over the bins -> Conv 1x1 with weights 0..reg_max-1 -> Reshape [N, 4, A]."""
    anchors = 6
    w = np.arange(reg_max, dtype=np.float32).reshape(1, reg_max, 1, 1)
    inits = [
        numpy_helper.from_array(w, "dfl.conv.weight"),
        numpy_helper.from_array(np.array([1, 4, reg_max, anchors], np.int64), "shape1"),
        numpy_helper.from_array(np.array([1, 4, anchors], np.int64), "shape2"),
    ]
    nodes = [
        helper.make_node("Reshape", ["x", "shape1"], ["r"], name="dfl/Reshape"),
        helper.make_node("Transpose", ["r"], ["t"], name="dfl/Transpose", perm=[0, 2, 1, 3]),
        helper.make_node("Softmax", ["t"], ["s"], name="dfl/Softmax", axis=1),
        helper.make_node("Conv", ["s", "dfl.conv.weight"], ["c"], name="dfl/conv/Conv", kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["c", "shape2"], ["y"], name="dfl/Reshape_1"),
    ]
    graph = helper.make_graph(nodes, "dfl", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4 * reg_max, anchors])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, anchors])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_dfl_decoding_conv_is_found_and_named():
    fixed = find_fixed_weights(load_onnx_proto(dfl_model()))
    assert fixed == {"dfl.conv.weight": "fixed weights: arange 0..15 along input channels "
                                        "(distribution-focal decoding: the expectation over softmax bins)"}


def test_arange_without_softmax_is_still_found():
    ramp = np.tile(np.linspace(-1.0, 2.5, 8, dtype=np.float32).reshape(1, 8, 1, 1), (3, 1, 1, 1))  # step 0.5
    learned = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    fixed = find_fixed_weights(load_onnx_proto(conv_chain({"ramp": ramp, "learned": learned}, c_in=8)))
    assert fixed == {"ramp": "fixed weights: arange -1..2.5 along input channels (an index ramp, e.g. a decoding integral)"}


def test_constant_box_filter():
    box = np.full((4, 4, 3, 3), 1.0 / 9.0, np.float32)
    fixed = find_fixed_weights(load_onnx_proto(conv_chain({"box": box}, c_in=4)))
    assert fixed == {"box": f"fixed weights: constant tensor (every entry {np.float32(1 / 9):g})"}


def test_sobel_and_one_hot_selection_are_small_integers():
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    sobel = np.stack([sobel_x, sobel_x.T])[:, None].repeat(3, axis=1)  # [2, 3, 3, 3]
    select = np.zeros((4, 2, 1, 1), np.float32)  # output k copies input channel k % 2
    select[[0, 1, 2, 3], [0, 1, 0, 1]] = 1.0
    fixed = find_fixed_weights(load_onnx_proto(conv_chain({"sobel": sobel, "select": select}, c_in=3)))
    assert fixed == {
        "sobel": "fixed weights: exact small integers -2..2 (e.g. a Sobel or difference kernel)",
        "select": "fixed weights: exact small integers 0..1 (0/1 selection or one-hot kernel)",
    }


def test_binomial_blur_is_a_handful_of_dyadic_values():
    b = np.array([1, 2, 1], np.float32) / 4
    blur = np.zeros((3, 3, 3, 3), np.float32)
    for c in range(3):
        blur[c, c] = np.outer(b, b)  # values 0, 1/16, 1/8, 1/4
    fixed = find_fixed_weights(load_onnx_proto(conv_chain({"blur": blur}, c_in=3)))
    assert fixed == {"blur": "fixed weights: 4 exact dyadic values (0, 0.0625, 0.125, 0.25; e.g. a bilinear or binomial kernel)"}


@pytest.mark.parametrize("seed", range(3))
def test_random_normal_convs_of_typical_shapes_are_not_flagged(seed):
    rng = np.random.default_rng(seed)
    shapes = [(16, 3, 3, 3), (32, 16, 3, 3), (32, 32, 1, 1), (64, 32, 3, 3), (64, 64, 1, 1), (32, 64, 3, 3)]
    weights = {f"w{i}": rng.standard_normal(s).astype(np.float32) * np.sqrt(2.0 / np.prod(s[1:])) for i, s in enumerate(shapes)}
    # a depthwise conv and a 1-output head (the DFL conv's shape, but learned values)
    weights["dw"] = rng.standard_normal((32, 1, 3, 3)).astype(np.float32) * 0.3
    weights["head"] = rng.standard_normal((1, 32, 1, 1)).astype(np.float32) * 0.1
    model = conv_chain(weights, c_in=3, groups={"dw": 32})
    module = load_onnx_proto(model)
    assert len(module.weights) == 8
    assert find_fixed_weights(module) == {}


def test_magnitude_pruned_learned_weights_are_not_flagged():
    # an already-sparse learned layer: half exact zeros, the rest floats
    w = np.random.default_rng(1).standard_normal((16, 8, 3, 3)).astype(np.float32)
    w[np.abs(w) < np.median(np.abs(w))] = 0.0
    assert find_fixed_weights(load_onnx_proto(conv_chain({"w": w}, c_in=8))) == {}


@pytest.mark.skipif(not LIGHT_ZOO, reason="the onnx package ships no light model-zoo files")
@pytest.mark.parametrize("path", LIGHT_ZOO, ids=lambda p: Path(p).stem)
def test_light_model_zoo_weights_are_constant_stand_ins(path):
    # these files replace every weight with ConstantOfShape (one value repeated): honestly constant
    module = load_onnx(path)
    fixed = find_fixed_weights(module)
    assert list(fixed) == list(module.weights)
    assert all(r.startswith("fixed weights: constant tensor (every entry ") for r in fixed.values())
