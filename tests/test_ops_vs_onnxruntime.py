"""Single-node models at older opsets, compared with onnxruntime.

ONNX's backend cases mostly use the newest opset of each operator; these cover the versions
that older exporters and converters emit (attributes that later became inputs, coerced
Softmax, Upsample, ...), with constants both as initializers and as graph inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from compressor.onnx_import import load_onnx_proto
from compressor.runtimes.onnxruntime_cpu import onnxruntime_session

F, I64, B = np.float32, np.int64, np.bool_
_ONNX_TYPE = {np.dtype(F): TensorProto.FLOAT, np.dtype(I64): TensorProto.INT64, np.dtype(B): TensorProto.BOOL}


@dataclass
class Case:
    op: str
    opset: int
    inputs: list  # arrays fed at run time (graph inputs)
    consts: dict = field(default_factory=dict)  # input index -> array, stored as initializer
    attrs: dict = field(default_factory=dict)
    outputs: int = 1

    @property
    def id(self) -> str:
        extra = "-".join(f"{k}={v}" for k, v in self.attrs.items() if not isinstance(v, (list, np.ndarray)))
        return f"{self.op}{self.opset}" + (f"-{extra}" if extra else "") + (f"-c{sorted(self.consts)}" if self.consts else "")


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(F)


def ints(*values):
    return np.array(values, dtype=I64)


CASES = [
    Case("And", 9, [rnd(3, 4) > 0, rnd(3, 4, seed=1) > 0]),
    Case("Not", 13, [rnd(3, 4) > 0]),
    Case("Upsample", 9, [rnd(1, 2, 3, 4)], {1: np.array([1, 1, 2, 3], F)}, {"mode": "nearest"}),
    Case("Upsample", 9, [rnd(1, 2, 3, 4)], {1: np.array([1, 1, 2, 2], F)}, {"mode": "linear"}),
    Case("Softmax", 11, [rnd(2, 3, 4, 5)], attrs={"axis": 1}),
    Case("LogSoftmax", 9, [rnd(2, 3, 4)]),
    Case("Softmax", 13, [rnd(2, 3, 4)], attrs={"axis": 1}),
    Case("Split", 11, [rnd(2, 6, 4)], attrs={"axis": 1, "split": [1, 2, 3]}, outputs=3),
    Case("Split", 13, [rnd(2, 6, 4)], {1: ints(4, 2)}, {"axis": 1}, outputs=2),
    Case("Split", 18, [rnd(2, 7, 4)], attrs={"axis": 1, "num_outputs": 3}, outputs=3),
    Case("ReduceMean", 11, [rnd(2, 3, 4)], attrs={"axes": [1, 2], "keepdims": 1}),
    Case("ReduceMean", 18, [rnd(2, 3, 4)], {1: ints(-1)}, {"keepdims": 0}),
    Case("ReduceSum", 13, [rnd(2, 3, 4)], {1: ints(0, 2)}),
    Case("ReduceMax", 12, [rnd(2, 3, 4)], attrs={"axes": [1], "keepdims": 0}),
    Case("Clip", 9, [rnd(3, 4)], attrs={"min": -0.5, "max": 0.25}),
    Case("Clip", 11, [rnd(3, 4)], {1: np.array(-0.3, F)}),
    Case("Clip", 13, [rnd(3, 4), np.array(-0.3, F), np.array(0.4, F)]),
    Case("Squeeze", 11, [rnd(2, 1, 3, 1)], attrs={"axes": [1, 3]}),
    Case("Squeeze", 13, [rnd(2, 1, 3, 1)], {1: ints(-1)}),
    Case("Unsqueeze", 11, [rnd(2, 3)], attrs={"axes": [0, 3]}),
    Case("Unsqueeze", 13, [rnd(2, 3)], {1: ints(1, -1)}),
    Case("Resize", 10, [rnd(1, 2, 3, 4)], {1: np.array([1, 1, 2, 2], F)}, {"mode": "nearest"}),
    Case("Resize", 11, [rnd(1, 2, 4, 5)], {1: np.array([], F), 2: np.array([1, 1, 2, 1.5], F)}, {"mode": "linear"}),
    Case("Resize", 11, [rnd(1, 2, 4, 5)], {1: np.array([], F), 2: np.array([1, 1, 2, 2], F)},
         {"mode": "cubic", "coordinate_transformation_mode": "align_corners"}),
    Case("Resize", 13, [rnd(1, 2, 4, 5)], {3: ints(1, 2, 7, 9)},
         {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}),
    Case("Resize", 18, [rnd(1, 2, 8, 8)], {2: np.array([0.5, 0.5], F)}, {"mode": "linear", "axes": [2, 3], "antialias": 1}),
    Case("Pad", 9, [rnd(1, 2, 4, 5)], attrs={"pads": [0, 0, 1, 2, 0, 0, 2, 1], "mode": "reflect"}),
    Case("Pad", 11, [rnd(1, 2, 4, 5)], {1: ints(0, 0, 1, 1, 0, 0, 1, 1), 2: np.array(0.5, F)}),
    Case("Pad", 13, [rnd(1, 2, 4, 5)], {1: ints(0, 0, 2, 1, 0, 0, 1, 2)}, {"mode": "edge"}),
    Case("Pad", 18, [rnd(1, 2, 4, 5)], {1: ints(1, -1, 2, 1), 3: ints(2, 3)}),
    Case("Slice", 9, [rnd(4, 5, 6)], attrs={"starts": [1, 0], "ends": [3, 100], "axes": [0, 2]}),
    Case("Slice", 10, [rnd(4, 5, 6)], {1: ints(-1, 4), 2: ints(-100, 0), 3: ints(1, 2), 4: ints(-2, -1)}),
    Case("Slice", 13, [rnd(4, 5, 6), ints(1), ints(4)], {3: ints(1)}),
    Case("MaxPool", 10, [rnd(1, 2, 7, 7)], attrs={"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    Case("MaxPool", 12, [rnd(1, 2, 8, 8)], attrs={"kernel_shape": [2, 2], "dilations": [2, 2], "pads": [1, 0, 0, 1]}),
    Case("AveragePool", 11, [rnd(1, 2, 7, 7)], attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 0}),
    Case("AveragePool", 9, [rnd(1, 2, 6, 6)], attrs={"kernel_shape": [2, 2], "strides": [2, 2]}),
    Case("BatchNormalization", 9, [rnd(2, 3, 4, 4)],
         {1: rnd(3, seed=1), 2: rnd(3, seed=2), 3: rnd(3, seed=3), 4: np.abs(rnd(3, seed=4)) + 0.5}, {"epsilon": 1e-3}),
    Case("BatchNormalization", 15, [rnd(2, 3, 4)], {1: rnd(3, seed=1), 2: rnd(3, seed=2), 3: rnd(3, seed=3), 4: np.abs(rnd(3, seed=4)) + 0.5}),
    Case("InstanceNormalization", 9, [rnd(2, 3, 4, 5)], {1: rnd(3, seed=1), 2: rnd(3, seed=2)}),
    Case("LRN", 9, [rnd(1, 5, 4, 4)], attrs={"size": 3, "alpha": 1e-3, "beta": 0.75, "bias": 1.0}),
    Case("Dropout", 9, [rnd(3, 4)], attrs={"ratio": 0.3}),
    Case("Dropout", 12, [rnd(3, 4)], {1: np.array(0.2, F)}),
    Case("TopK", 9, [rnd(3, 6)], attrs={"k": 2}, outputs=2),
    Case("TopK", 11, [rnd(3, 6)], {1: ints(3)}, {"largest": 0, "axis": 0}, outputs=2),
    Case("Gemm", 9, [rnd(4, 3)], {1: rnd(5, 4, seed=1), 2: rnd(5, seed=2)}, {"alpha": 0.5, "beta": 2.0, "transA": 1, "transB": 1}),
    Case("MatMul", 9, [rnd(2, 3, 4)], {1: rnd(4, 5, seed=1)}),
    Case("Flatten", 9, [rnd(2, 3, 4, 5)], attrs={"axis": 2}),
    Case("Flatten", 13, [rnd(2, 3, 4, 5)], attrs={"axis": -1}),
    Case("Cast", 9, [rnd(3, 4) * 10], attrs={"to": TensorProto.INT64}),
    Case("Where", 9, [rnd(3, 4) > 0, rnd(3, 4, seed=1), rnd(1, 4, seed=2)]),
    Case("Equal", 11, [rnd(3, 4).round(), rnd(3, 4, seed=1).round()]),
    Case("Greater", 9, [rnd(3, 4), rnd(4, seed=1)]),
    Case("Less", 9, [rnd(3, 4), rnd(4, seed=1)]),
    Case("ArgMax", 11, [rnd(3, 4, 5)], attrs={"axis": -1, "keepdims": 0}),
    Case("Range", 11, [np.array(1.0, F), np.array(7.5, F), np.array(1.5, F)]),
    Case("ConstantOfShape", 9, [ints(2, 3)], attrs={"value": numpy_helper.from_array(np.array([1.5], F))}),
    Case("Expand", 9, [rnd(3, 1)], {1: ints(2, 3, 4)}),
    Case("Tile", 9, [rnd(2, 3)], {1: ints(2, 1)}),
    Case("HardSigmoid", 9, [rnd(3, 4)], attrs={"alpha": 0.3, "beta": 0.4}),
    Case("Elu", 9, [rnd(3, 4)], attrs={"alpha": 0.7}),
    Case("Selu", 9, [rnd(3, 4)]),
    Case("Softplus", 9, [rnd(3, 4)]),
    Case("LeakyRelu", 9, [rnd(3, 4)], attrs={"alpha": 0.2}),
    Case("PRelu", 9, [rnd(2, 3, 4, 4)], {1: rnd(3, 1, 1, seed=1)}),
    Case("HardSwish", 14, [rnd(3, 4) * 4]),
    Case("ConvTranspose", 9, [rnd(1, 4, 5, 5)], {1: rnd(4, 3, 3, 3, seed=1)},
         {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}),
    Case("Conv", 9, [rnd(1, 4, 9, 9)], {1: rnd(6, 2, 3, 3, seed=1)}, {"group": 2, "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    Case("Einsum", 12, [rnd(2, 3, 4), rnd(2, 4, 5, seed=1)], attrs={"equation": "bij,bjk->bik"}),
    Case("DepthToSpace", 9, [rnd(1, 8, 2, 3)], attrs={"blocksize": 2}),
    Case("DepthToSpace", 11, [rnd(1, 8, 2, 3)], attrs={"blocksize": 2, "mode": "CRD"}),
    Case("SpaceToDepth", 9, [rnd(1, 2, 4, 6)], attrs={"blocksize": 2}),
    Case("Mean", 9, [rnd(3, 4), rnd(4, seed=1), rnd(1, 4, seed=2)]),
    Case("Max", 9, [rnd(3, 4), rnd(4, seed=1)]),
    Case("Min", 9, [rnd(3, 4), rnd(4, seed=1)]),
    Case("Sum", 9, [rnd(3, 4), rnd(4, seed=1)]),
    Case("Pow", 9, [np.abs(rnd(3, 4)) + 0.1, rnd(4, seed=1)]),
    Case("Gather", 9, [rnd(5, 4)], {1: ints(0, 3, 3, 1)}, {"axis": 0}),
    Case("GatherElements", 11, [rnd(3, 4)], {1: np.array([[0, 1, 2, 0], [2, 2, 1, 0]], I64)}, {"axis": 0}),
    Case("LayerNormalization", 17, [rnd(2, 3, 8)], {1: rnd(8, seed=1), 2: rnd(8, seed=2)}, {"axis": -1}),
    Case("Gelu", 20, [rnd(3, 4)], attrs={"approximate": "tanh"}),
    Case("Mish", 18, [rnd(3, 4)]),
]


def build(case: Case) -> tuple[onnx.ModelProto, list[np.ndarray]]:
    n_inputs = len(case.inputs) + len(case.consts)
    names, graph_inputs, inits, feeds = [], [], [], []
    runtime = iter(case.inputs)
    for i in range(max(n_inputs, max(case.consts, default=-1) + 1)):
        if i in case.consts:
            array = case.consts[i]
            names.append(f"c{i}")
            inits.append(numpy_helper.from_array(array, f"c{i}"))
        elif i < n_inputs and (array := next(runtime, None)) is not None:
            names.append(f"x{i}")
            graph_inputs.append(helper.make_tensor_value_info(f"x{i}", _ONNX_TYPE[array.dtype], list(array.shape)))
            feeds.append(array)
        else:
            names.append("")  # an omitted optional input
    outputs = [f"y{k}" for k in range(case.outputs)]
    node = helper.make_node(case.op, names, outputs, **case.attrs)
    graph = helper.make_graph([node], "single", graph_inputs,
                              [helper.make_value_info(o, onnx.TypeProto()) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 7 if case.opset <= 13 else 8
    return model, feeds


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matches_onnxruntime(case, tmp_path):
    model, feeds = build(case)
    path = tmp_path / "m.onnx"
    onnx.save_model(model, str(path))
    session = onnxruntime_session(path)
    want = session.run(None, {i.name: x for i, x in zip(session.get_inputs(), feeds)})
    module = load_onnx_proto(model)
    with torch.no_grad():
        got = module(*[torch.from_numpy(np.array(x)) for x in feeds])
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, want):
        g = g.numpy()
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
