"""What each prunable weight costs: its bias, its stored values and its multiply-adds per sample.

OLMP prunes a layer's bias with its weight and counts both (olmp.md §1), and its flops objective
weighs every weight by how often the layer applies it. Both need facts the weight alone lacks:
which tensor is its bias (Conv/Gemm input C, or the constant of the Add after a MatMul), and how
many output positions the layer computes (from ONNX shape inference at a concrete input shape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx

from .errors import ConfigError
from .onnx_import.builder import node_label


@dataclass(frozen=True)
class LayerCost:
    weight: str
    bias: str | None
    weight_params: int
    bias_params: int
    macs: int | None  # multiply-adds per sample with every weight kept (None: shapes not static)

    @property
    def params(self) -> int:
        return self.weight_params + self.bias_params

    @property
    def macs_per_weight(self) -> int | None:
        """Multiply-adds one weight element takes part in per sample (the positions it is applied at)."""
        return None if self.macs is None else self.macs // max(self.weight_params, 1)


def layer_costs(module, input_shape: list[int] | None = None) -> dict[str, LayerCost]:
    """One LayerCost per prunable weight of `module`, in the module's weight order.

    `input_shape` (batch first) fixes the single input for shape inference; without it, or when
    inference cannot resolve a layer's output, that layer's `macs` is None.
    """
    graph = module.onnx_model.graph
    nodes = {node_label(node, i): node for i, node in enumerate(graph.node)}
    parameters = module.onnx_parameters()
    biases = _biases(graph, nodes, module.weights, parameters)
    shapes = _inferred_shapes(module, input_shape) if input_shape is not None else {}
    costs = {}
    for name, info in module.weights.items():
        bias = biases.get(name)
        bias_size = parameters[bias].numel() if bias else 0
        costs[name] = LayerCost(name, bias, info.numel, bias_size, _macs(nodes[info.node], info, shapes))
    return costs


def require_macs(costs: dict[str, LayerCost]) -> None:
    missing = [c.weight for c in costs.values() if c.macs is None]
    if missing:
        raise ConfigError(f"cannot count multiply-adds of {', '.join(missing[:3])}: output shapes are not static "
                          "(give --input-shape)")


def _biases(graph, nodes, weights, parameters) -> dict[str, str]:
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    biases = {}
    for name, info in weights.items():
        node = nodes[info.node]
        if info.op_type in ("Conv", "ConvTranspose", "Gemm"):
            if len(node.input) > 2 and node.input[2] in parameters:
                biases[name] = node.input[2]
        elif info.op_type == "MatMul":  # Linear on N-D inputs: MatMul then Add(bias)
            for add in consumers.get(node.output[0], []):
                if add.op_type != "Add":
                    continue
                other = [n for n in add.input if n != node.output[0]]
                if other and other[0] in parameters and parameters[other[0]].dim() == 1:
                    biases[name] = other[0]
    return biases


def _inferred_shapes(module, input_shape: list[int]) -> dict[str, list[int | None]]:
    model = onnx.ModelProto()
    model.CopyFrom(module.onnx_model)
    for graph_input in model.graph.input:
        if graph_input.name == module.input_names[0]:
            dims = graph_input.type.tensor_type.shape.dim
            if len(dims) != len(input_shape):
                raise ConfigError(f"input shape {input_shape} has rank {len(input_shape)}, the model's input {len(dims)}")
            for dim, value in zip(dims, input_shape):
                dim.Clear()
                dim.dim_value = int(value)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # an op onnx cannot infer: costs stay unknown rather than failing the run
        return {}
    shapes = {}
    for value in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def _macs(node, info, shapes) -> int | None:
    # Every weight element is used once per position of the axis it does not reduce over: output
    # positions for Conv/Gemm/MatMul, input positions for ConvTranspose (which scatters).
    if info.op_type == "ConvTranspose":
        shape, channel_axis = shapes.get(node.input[0]), 1
    else:
        shape = shapes.get(node.output[0])
        channel_axis = 1 if info.op_type == "Conv" else -1
    if info.layout in ("MK", "KM"):  # a constant left operand: not a per-sample layer
        return None
    if not shape or len(shape) < 2 or any(not d for d in shape):
        return None
    positions = math.prod(shape) // shape[0] // shape[channel_axis]  # per sample, per output channel
    return positions * info.numel
