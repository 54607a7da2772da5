"""Small hand-written ONNX graphs for tests (weights in initializers, Constant nodes or subgraphs)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_gemm_model(opset: int = 13, weights_as: str = "initializer", seed: int = 0) -> onnx.ModelProto:
    """x[N,3,8,8] -> Conv(4,3x3,pad 1) -> Relu -> Flatten -> Gemm(256->10, transB=1).

    weights_as: "initializer" | "constant" (Constant nodes) | "subgraph" (the conv weight is
    Constant -> Transpose -> Identity -> Cast, the Gemm weight Constant -> Reshape).
    """
    rng = np.random.default_rng(seed)
    conv_w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    conv_b = rng.standard_normal(4).astype(np.float32) * 0.1
    fc_w = rng.standard_normal((10, 256)).astype(np.float32) * 0.1
    fc_b = rng.standard_normal(10).astype(np.float32) * 0.1
    nodes, inits = [], []

    def const(name, array):
        if weights_as == "initializer":
            inits.append(numpy_helper.from_array(array, name))
        else:
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name + "_value")))

    if weights_as == "subgraph":
        # conv weight stored transposed (as TF converters do) and brought back by a chain
        nodes.append(helper.make_node("Constant", [], ["w_t"], value=numpy_helper.from_array(conv_w.transpose(2, 3, 1, 0).copy(), "w_t_value")))
        nodes.append(helper.make_node("Transpose", ["w_t"], ["w_perm"], perm=[3, 2, 0, 1]))
        nodes.append(helper.make_node("Identity", ["w_perm"], ["w_id"]))
        nodes.append(helper.make_node("Cast", ["w_id"], ["conv.weight"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Constant", [], ["fc_flat"], value=numpy_helper.from_array(fc_w.reshape(-1), "fc_flat_value")))
        nodes.append(helper.make_node("Constant", [], ["fc_shape"], value=numpy_helper.from_array(np.array([10, 256], np.int64), "fc_shape_value")))
        nodes.append(helper.make_node("Reshape", ["fc_flat", "fc_shape"], ["fc.weight"]))
    else:
        const("conv.weight", conv_w)
        const("fc.weight", fc_w)
    const("conv.bias", conv_b)
    const("fc.bias", fc_b)
    nodes += [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "conv_gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tests")
    model.ir_version = 8
    model.metadata_props.add(key="author", value="tests")
    onnx.checker.check_model(model)
    return model
