"""TensorRT layer names back to the ONNX weights they use, and each planned weight's fate in the build.

TensorRT's sparsity log (log.py) names *layers*; the planner (`--plan auto`) names *weights* (ONNX
tensor names). The bridge is the ONNX file the engine was built from:

- onnx-tensorrt names each layer after the ONNX node it imports, `node.name`, and an unnamed node
  `"node_of_" + node.output(0)` (its `getNodeName` in onnx2trt_utils.cpp);
- graphs exported by torch < 1.13 name their nodes "<Op>_<index>" ("Conv_0", "Relu_1"); those are
  the nodes' own names and match like any other. Assumption: some tools print an unnamed node the
  same way, so an unnamed node also answers to "<op_type>_<its index in the graph>" when no node
  carries that name;
- a fused layer is named by its parts joined with " + " ("Conv_0 + Relu_1"), each part a layer name;
- a weight reaches its node directly as an initializer, or through a chain of nodes whose inputs are
  all constant (DequantizeLinear of a quantized weight, Cast to FP16, Transpose, Identity, ...).

Names TensorRT makes up itself ("(Unnamed Layer* 3) [Convolution]", reformatting copies) match no
node and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import onnx

from .log import SparsityReport

FUSED_SEPARATOR = " + "

PICKED = "picked sparse"
RAN_DENSE = "ran dense"
NOT_ELIGIBLE = "not eligible in TensorRT"
NOT_LOGGED = "not in the log"
STATUSES = (PICKED, RAN_DENSE, NOT_ELIGIBLE, NOT_LOGGED)

# nodes that pass a constant through, changed but still constant (what may sit between a weight and its layer)
_CONSTANT_PASSING = {"DequantizeLinear", "QuantizeLinear", "Cast", "Transpose", "Identity", "Reshape", "Unsqueeze",
                     "Squeeze", "Flatten"}
_KERNEL_INPUT = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}  # where the weight enters


@dataclass(frozen=True)
class NodeWeights:
    """What the ONNX graph says about names: each layer-making node's TensorRT name and the constants it uses."""

    weights: dict[str, tuple[str, ...]]   # node's TensorRT name -> original constants reaching any of its inputs
    kernels: dict[str, tuple[str, ...]]   # Conv/ConvTranspose/Gemm/MatMul node -> the constants of its weight input
    derived: dict[str, tuple[str, ...]]   # a constant made by a chain (DequantizeLinear output, ...) -> its originals
    aliases: dict[str, str]               # other names TensorRT may use -> node's TensorRT name

    def node_of(self, layer_part: str) -> str | None:
        """The node a (non-fused) layer name stands for, or None when TensorRT made the name up."""
        part = layer_part.strip()
        if part in self.weights:
            return part
        return self.aliases.get(part)

    def nodes_of_layer(self, layer: str) -> list[str]:
        """The nodes of a layer name, fused ("A + B") or not, that exist in the ONNX graph."""
        found = (self.node_of(part) for part in layer.split(FUSED_SEPARATOR))
        return list(dict.fromkeys(node for node in found if node is not None))

    def node_using(self, weight: str) -> str | None:
        """The first node (graph order) that consumes `weight`, directly or through a constant chain."""
        originals = set(self.derived.get(weight, (weight,)))
        for node, consumed in self.weights.items():
            if originals & set(consumed):
                return node
        return None


def trt_node_name(node: onnx.NodeProto) -> str:
    """The name onnx-tensorrt gives the layer(s) it makes from `node`."""
    if node.name:
        return node.name
    return f"node_of_{node.output[0]}" if node.output else ""


def node_weights(model: onnx.ModelProto) -> NodeWeights:
    """Map every node of `model`'s main graph that makes a layer to the constants (initializers, Constant
    outputs, through constant-only chains) that it consumes, keyed by the node's TensorRT name."""
    graph = model.graph
    originals: dict[str, tuple[str, ...]] = {init.name: (init.name,) for init in graph.initializer}
    originals.update({s.values.name: (s.values.name,) for s in graph.sparse_initializer})
    names = {node.name for node in graph.node if node.name}
    weights, kernels, derived, aliases = {}, {}, {}, {}
    for index, node in enumerate(graph.node):  # ONNX graphs are topologically sorted
        inputs = [name for name in node.input if name]
        if node.op_type == "Constant" or (node.op_type in _CONSTANT_PASSING and inputs
                                          and all(name in originals for name in inputs)):
            # folded into its consumer's weights by TensorRT: no layer of its own
            made_from = tuple(dict.fromkeys(o for name in inputs for o in originals[name]))
            for out in node.output:
                if out:
                    originals[out] = made_from if node.op_type != "Constant" else (out,)
                    if node.op_type != "Constant":
                        derived[out] = made_from
            continue
        key = trt_node_name(node)
        if not key:
            continue
        consumed = tuple(dict.fromkeys(o for name in inputs if name in originals for o in originals[name]))
        weights[key] = tuple(dict.fromkeys(weights.get(key, ()) + consumed))
        if node.op_type in _KERNEL_INPUT:
            at = _KERNEL_INPUT[node.op_type]
            candidates = [node.input[at]] if len(node.input) > at else []
            if node.op_type == "MatMul":  # either side may be the constant one
                candidates = [name for name in node.input[:2] if name in originals][:1]
            kernel = [o for name in candidates if name in originals for o in originals[name]]
            # the first original is the weight itself: DequantizeLinear takes it before its scale and zero point
            if kernel:
                kernels[key] = tuple(kernel)
        if not node.name:
            positional = f"{node.op_type}_{index}"
            if positional not in names:
                aliases.setdefault(positional, key)
    return NodeWeights(weights, kernels, derived, aliases)


def node_weights_of_file(path: Path) -> NodeWeights:
    """`node_weights` of an ONNX file; the weights' data (external or not) is not read."""
    return node_weights(onnx.load(str(path), load_external_data=False))


def weight_statuses(sparsity: SparsityReport, nodes: NodeWeights, weights: Iterable[str],
                    planned: Iterable[str] = ()) -> list[dict]:
    """One row per weight: {weight, planned, node, trt_layer, status}.

    status: PICKED (TensorRT chose a sparse kernel for the layer holding it), RAN_DENSE (eligible,
    dense kernel chosen), NOT_ELIGIBLE (the log lists the layer nowhere), NOT_LOGGED (the build
    log had no sparsity lines: a non-verbose build, or SPARSE_WEIGHTS off)."""
    planned = set(planned)
    layer_of = _layer_of_node(sparsity.eligible, nodes)
    picked = set(sparsity.picked)
    rows = []
    for weight in dict.fromkeys(weights):
        node = nodes.node_using(weight)
        layer = layer_of.get(node) if node is not None else None
        if not sparsity.logged:
            status = NOT_LOGGED
        elif layer is None:
            status = NOT_ELIGIBLE
        else:
            status = PICKED if layer in picked else RAN_DENSE
        rows.append({"weight": weight, "planned": weight in planned, "node": node, "trt_layer": layer, "status": status})
    return rows


def weights_in_log(sparsity: SparsityReport, nodes: NodeWeights) -> list[str]:
    """The weights of the layers TensorRT listed as eligible, in log order."""
    found = []
    for layer in sparsity.eligible:
        for node in nodes.nodes_of_layer(layer):
            found.extend(nodes.kernels.get(node, ())[:1])
    return list(dict.fromkeys(found))


def engine_layers(sparsity: SparsityReport, nodes: NodeWeights, nm_plan: Mapping | None) -> list[dict]:
    """The report's `engine.layers`: with a plan, its eligible weights, then the weights TensorRT found
    eligible that the plan did not; without one, the weights of the log's eligible layers."""
    in_log = weights_in_log(sparsity, nodes)
    if nm_plan is None:
        return weight_statuses(sparsity, nodes, in_log)
    planned = list(nm_plan.get("planned") or [])
    ours = list(dict.fromkeys(list(nm_plan.get("eligible") or []) + planned))
    return weight_statuses(sparsity, nodes, ours + [w for w in in_log if w not in set(ours)], planned)


def _layer_of_node(layers: Iterable[str], nodes: NodeWeights) -> dict[str, str]:
    """node -> the (possibly fused) TensorRT layer name it is part of."""
    found = {}
    for layer in layers:
        for node in nodes.nodes_of_layer(layer):
            found.setdefault(node, layer)
    return found
