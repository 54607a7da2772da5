"""The import pass: ONNX graph -> execution plan, parameters and buffers.

1. sort the nodes topologically (files are not always sorted);
2. build every node's function once; run the nodes whose inputs are all constant right away
   (constant folding), so weights held in Constant/Identity/Cast/Reshape/Transpose chains
   become plain tensors;
3. make the trainable inputs of Conv/ConvTranspose/Gemm/MatMul (and biases, norm affine
   parameters) nn.Parameters, keep every other constant the plan reads as a buffer;
4. assign each tensor name a slot and record when each slot is last read.
"""

from __future__ import annotations

from collections import defaultdict

import onnx
import torch

from ..errors import ModelLoadError, UnsupportedModelError
from .context import NodeContext
from .module import NONE_SLOT, SINK_SLOT, ConstantSource, OnnxModule, Step
from .reader import LoadedModel, check_supported, opset_versions
from .registry import lookup, normalize_domain
from .tensors import TORCH_TO_ONNX, tensor_proto_to_torch
from .weights import WeightInfo, matmul_bias_input, trainable_inputs

# Never folded even when their inputs are constant: their value must be drawn at run time.
_NOT_FOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


def node_label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}#{index}"


def topological_order(graph: onnx.GraphProto, available: set[str]) -> list[int]:
    """Indices of graph.node in an order where every input is produced before it is read."""
    producers: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if out:
                producers[out] = i
    waiting = [0] * len(graph.node)
    consumers: dict[int, list[int]] = defaultdict(list)
    for i, node in enumerate(graph.node):
        for name in set(node.input):
            if not name or name in available:
                continue
            if name not in producers:
                raise ModelLoadError(f"node {node_label(node, i)} reads {name!r}, which nothing in the graph defines")
            waiting[i] += 1
            consumers[producers[name]].append(i)
    ready = [i for i in range(len(graph.node)) if waiting[i] == 0]
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for j in consumers[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if len(order) != len(graph.node):
        raise ModelLoadError("the ONNX graph has a cycle")
    return _stable_order(order, graph, available)


def _stable_order(order: list[int], graph: onnx.GraphProto, available: set[str]) -> list[int]:
    """Prefer the file's own node order when it is already topological (easier to debug)."""
    seen = set(available)
    for node in graph.node:
        if any(name and name not in seen for name in node.input):
            return order
        seen.update(node.output)
    return list(range(len(graph.node)))


def build_module(loaded: LoadedModel, label: str | None = None) -> OnnxModule:
    proto = loaded.proto
    graph = proto.graph
    label = label or (str(loaded.path) if loaded.path else "model")
    check_supported(proto, label)
    opsets = opset_versions(proto)

    constants: dict[str, torch.Tensor] = {}
    onnx_types: dict[str, int] = {}
    for init in graph.initializer:
        constants[init.name] = tensor_proto_to_torch(init)
        onnx_types[init.name] = init.data_type
    for sparse in graph.sparse_initializer:
        dense = onnx.numpy_helper.to_array(sparse)  # densified: runtimes do the same
        constants[sparse.values.name] = torch.from_numpy(dense.copy())
        onnx_types[sparse.values.name] = sparse.values.data_type
    initializer_names = set(constants)
    input_names = [i.name for i in graph.input if i.name not in initializer_names]

    order = topological_order(graph, set(input_names) | initializer_names)
    folded_by: dict[str, tuple[str, ...]] = {}  # constant name -> nodes that computed it
    producers: dict[str, onnx.NodeProto] = {}
    plan_nodes: list[tuple[int, onnx.NodeProto, NodeContext, object]] = []
    for index in order:
        node = graph.node[index]
        for out in node.output:
            producers[out] = node
        impl, version = lookup(node.op_type, node.domain, opsets[normalize_domain(node.domain)])
        ctx = NodeContext(node, version, constants)
        try:
            fn = impl.builder(ctx)
        except (ValueError, NotImplementedError) as exc:  # an attribute value the op does not implement
            raise UnsupportedModelError(f"{label}: node {node_label(node, index)} ({node.op_type}): {exc}") from None
        inputs = [n for n in node.input if n]
        if node.op_type not in _NOT_FOLDABLE and all(n in constants for n in inputs):
            _fold(node, index, fn, constants, onnx_types, folded_by)
        else:
            plan_nodes.append((index, node, ctx, fn))

    # --- decide what trains ---------------------------------------------------------------
    weights: dict[str, WeightInfo] = {}
    trainable: set[str] = set()
    for index, node, ctx, _ in plan_nodes:
        for t in trainable_inputs(ctx, node_label(node, index)):
            name = node.input[t.input_index]
            trainable.add(name)
            if t.weight is not None and name not in weights:
                weights[name] = t.weight
        bias = matmul_bias_input(node, producers, constants)
        if bias is not None:
            trainable.add(node.input[bias])

    # --- slots ------------------------------------------------------------------------------
    slot_of: dict[str, int] = {"": NONE_SLOT}
    next_slot = 2

    def slot(name: str) -> int:
        nonlocal next_slot
        if name not in slot_of:
            slot_of[name] = next_slot
            next_slot += 1
        return slot_of[name]

    input_slots = [slot(n) for n in input_names]
    used_constants: dict[str, tuple[int, torch.Tensor, bool, ConstantSource]] = {}
    output_names = [o.name for o in graph.output]

    def use_constant(name: str) -> None:
        if name in constants and name not in used_constants:
            value = constants[name]
            is_trainable = name in trainable and value.is_floating_point()
            source = ConstantSource(
                onnx_name=name,
                onnx_type=onnx_types.get(name, TORCH_TO_ONNX.get(value.dtype, onnx.TensorProto.FLOAT)),
                initializer=name in initializer_names,
                folded_from=folded_by.get(name, ()),
            )
            used_constants[name] = (slot(name), value, is_trainable, source)

    raw_steps = []
    for index, node, ctx, fn in plan_nodes:
        for name in node.input:
            use_constant(name)
        in_slots = tuple(slot(n) if n else NONE_SLOT for n in node.input)
        out_slots = tuple(slot(n) if n else SINK_SLOT for n in node.output)
        raw_steps.append((fn, in_slots, out_slots, node_label(node, index)))
    for name in output_names:
        use_constant(name)
        if name not in slot_of:
            raise ModelLoadError(f"{label}: graph output {name!r} is produced by no node")
    output_slots = [slot_of[n] for n in output_names]

    # Release each intermediate after its last reader (graph outputs and constants are kept).
    keep = set(output_slots) | {s for s, *_ in used_constants.values()} | {NONE_SLOT, SINK_SLOT}
    last_read: dict[int, int] = {}
    for k, (_, in_slots, _, _) in enumerate(raw_steps):
        for s in in_slots:
            last_read[s] = k
    frees: dict[int, list[int]] = defaultdict(list)
    for s, k in last_read.items():
        if s not in keep:
            frees[k].append(s)
    steps = [Step(fn, ins, outs, tuple(frees[k]), lab) for k, (fn, ins, outs, lab) in enumerate(raw_steps)]

    for name in list(weights):  # a "weight" that did not become a parameter is not prunable
        if name not in used_constants or not used_constants[name][2]:
            del weights[name]

    return OnnxModule(
        steps=steps,
        num_slots=next_slot,
        input_names=input_names,
        input_slots=input_slots,
        output_names=output_names,
        output_slots=output_slots,
        constants=used_constants,
        weights=weights,
        onnx_model=proto,
        source_path=loaded.path,
        uses_external_data=loaded.uses_external_data,
        input_shapes={i.name: _declared_shape(i) for i in graph.input if i.name in input_names},
    )


def _fold(node, index, fn, constants, onnx_types, folded_by) -> None:
    args = [constants[n] if n else None for n in node.input]
    with torch.no_grad():
        result = fn(*args)
    if not isinstance(result, (tuple, list)):
        result = (result,)
    chain = tuple(dict.fromkeys(sum((folded_by.get(n, ()) for n in node.input if n), ()) + (node_label(node, index),)))
    for name, value in zip(node.output, result):
        if name:
            constants[name] = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
            if constants[name].is_floating_point() or constants[name].dtype in TORCH_TO_ONNX:
                onnx_types[name] = TORCH_TO_ONNX.get(constants[name].dtype, onnx.TensorProto.FLOAT)
            folded_by[name] = chain


def _declared_shape(value_info: onnx.ValueInfoProto) -> list:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
