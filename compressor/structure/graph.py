"""What the channel analysis reads from an ONNX graph: nodes in execution order, each tensor's
producer and consumers, constant values (initializers, Constant nodes, and what is computed from
constants only), node attributes, and every tensor's shape from one onnxruntime run.

Shapes come from running the model rather than from ONNX shape inference, which leaves symbolic
or unknown dimensions in many exported graphs; the run uses the feeds given (any batch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx

from ..onnx_import.builder import node_attr, node_label
from ..onnx_import.stored import stored_tensors
from ..runtimes import get_runtime


@dataclass
class GraphIndex:
    model: onnx.ModelProto
    nodes: list[tuple[str, onnx.NodeProto]]  # (label, node) in graph order, constant-only nodes left out
    constants: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    producers: dict[str, str] = field(default_factory=dict)  # tensor -> node label
    consumers: dict[str, list[str]] = field(default_factory=dict)  # tensor -> node labels
    by_label: dict[str, onnx.NodeProto] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    # small integer tensors computed at run time (shape arithmetic: a Reshape's target built from
    # Shape, Slice, Concat), their values on the feeds given; see `reshape` in propagation.py
    run_values: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        for label, node in self.nodes:
            self.by_label[label] = node
            for name in node.output:
                if name:
                    self.producers[name] = label
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(label)
        graph = self.model.graph
        initialized = {t.name for t in graph.initializer}
        self.inputs = [i.name for i in graph.input if i.name not in initialized]
        self.outputs = [o.name for o in graph.output]

    def attr(self, label: str, name: str, default=None):
        return node_attr(self.by_label[label], name, default)

    def const(self, name: str) -> np.ndarray | None:
        return self.constants.get(name) if name else None

    def rank(self, name: str) -> int | None:
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)


def constant_values(model: onnx.ModelProto) -> tuple[dict[str, np.ndarray], set[int]]:
    """Initializers and Constant node values, and the indices of nodes computing only constants
    (Constant nodes and what reads nothing else) - their outputs are folded by a run."""
    constant_nodes = {i for i, node in enumerate(model.graph.node) if node.op_type == "Constant"}
    return stored_tensors(model), constant_nodes


def index_graph(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> GraphIndex:
    """The graph's index, with every tensor's value from one run on `feeds` used for shapes and to
    resolve tensors computed from constants alone (shape arithmetic, folded weight subgraphs)."""
    values, constant_nodes = constant_values(model)
    run = run_all(model, feeds)
    shapes = {name: tuple(int(d) for d in np.shape(v)) for name, v in {**values, **run}.items()}
    shapes.update({name: tuple(int(d) for d in np.shape(v)) for name, v in feeds.items()})
    graph = model.graph
    # a node is constant when all its inputs are: its outputs join the constants (from the run)
    known = set(values)
    for i, node in enumerate(graph.node):
        if i in constant_nodes:
            continue
        ins = [n for n in node.input if n]
        if ins and all(n in known for n in ins) and node.op_type not in _NOT_FOLDABLE:
            constant_nodes.add(i)
            for out in node.output:
                if out and out in run:
                    values[out] = run[out]
                    known.add(out)
    nodes = [(node_label(node, i), node) for i, node in enumerate(graph.node) if i not in constant_nodes]
    small = {name: np.asarray(v) for name, v in run.items()
             if name not in values and np.asarray(v).dtype.kind in "iu" and np.ndim(v) <= 1 and np.size(v) <= 16}
    return GraphIndex(model, nodes, values, shapes, run_values=small)


_NOT_FOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


def run_all(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every node output's value on `feeds`, from onnxruntime with each one made a graph output."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for name in node.output:
            if name and name not in present:
                probe.graph.output.append(onnx.ValueInfoProto(name=name))  # type left to the runtime
                present.add(name)
    session = get_runtime("onnxruntime-cpu").open(probe)
    wanted = [n for n in session.input_names]
    values = session.run({n: feeds[n] for n in wanted})
    return dict(zip(session.output_names, values))
