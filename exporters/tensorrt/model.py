"""What the engine build needs to know about an ONNX file: its weights' float type, whether it is
quantized with Q/DQ, and its inputs' dimensions (-1 where symbolic).

Read from the file without loading the weights into a framework; TensorRT 11 takes its precision
from exactly these types, so the build settings are decided from them (flags.py).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from compressor.errors import ModelLoadError

_FLOAT_NAMES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16",
                TensorProto.BFLOAT16: "bfloat16", TensorProto.DOUBLE: "float64"}
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


@dataclass(frozen=True)
class ModelFacts:
    weight_float: str | None           # the float type holding most float weights; None without any
    has_qdq: bool                      # QuantizeLinear/DequantizeLinear nodes: explicit INT8
    inputs: dict[str, tuple[int, ...]]  # graph inputs (not initializers), -1 for a symbolic dimension

    @property
    def dynamic_inputs(self) -> dict[str, tuple[int, ...]]:
        return {name: dims for name, dims in self.inputs.items() if -1 in dims}


def facts_of(model: onnx.ModelProto) -> ModelFacts:
    graph = model.graph
    counts = Counter()
    for tensor in graph.initializer:
        if tensor.data_type in _FLOAT_NAMES:
            counts[_FLOAT_NAMES[tensor.data_type]] += max(1, math.prod(tensor.dims))
    initialized = {t.name for t in graph.initializer}
    inputs = {}
    for value in graph.input:
        if value.name in initialized:  # old exporters list weights as inputs too
            continue
        dims = value.type.tensor_type.shape.dim
        inputs[value.name] = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in dims)
    ops = {node.op_type for node in graph.node}
    ops.update(node.op_type for function in model.functions for node in function.node)
    return ModelFacts(counts.most_common(1)[0][0] if counts else None, bool(ops & _QDQ_OPS), inputs)


def read_facts(path: Path) -> ModelFacts:
    try:
        # the graph only: external weight data is not needed for types and shapes
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not an ONNX model"
        raise ModelLoadError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    return facts_of(model)

