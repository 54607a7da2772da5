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
from .module import NONE_SLOT, SINK_SLOT, ConstantSource, OnnxModule, Step, Tail
from .reader import LoadedModel, check_supported, node_reads, node_supported, opset_versions, subgraphs, unsupported_ops_text
from .registry import lookup, normalize_domain
from .tensors import ONNX_TO_TORCH, TORCH_TO_ONNX, tensor_proto_to_torch
from .weights import WeightInfo, matmul_bias_input, trainable_inputs

# Never folded even when their inputs are constant: their value must be drawn at run time.
_NOT_FOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


def node_label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}#{index}"


def node_attr(node: onnx.NodeProto, name: str, default=None):
    """The value of `node`'s attribute `name` as onnx.helper gives it (bytes, lists, TensorProto), or `default`."""
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


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


def build_module(loaded: LoadedModel, label: str | None = None, *, allow_tail: bool = True) -> OnnxModule:
    """Import `loaded`. With `allow_tail`, nodes the importer cannot run are accepted when no
    prunable weight comes after them: they and everything downstream become the module's
    `tail`, kept as is in the graph, and the module stops where the tail begins."""
    proto = loaded.proto
    graph = proto.graph
    label = label or (str(loaded.path) if loaded.path else "model")
    opsets = opset_versions(proto)
    if not allow_tail:
        check_supported(proto, label)

    initializer_names = {init.name for init in graph.initializer} | {s.values.name for s in graph.sparse_initializer}
    input_names = [i.name for i in graph.input if i.name not in initializer_names]
    order = topological_order(graph, set(input_names) | initializer_names)
    reads = [node_reads(node) for node in graph.node]

    # --- the tail: unsupported nodes and everything that reads their results ------------------
    unsupported: dict[int, str] = {}  # node index -> why the importer cannot run it
    refused: dict[int, str] = {}  # node index -> why its builder refused it
    if allow_tail:
        for i in order:
            node = graph.node[i]
            if not node_supported(node, opsets):
                domain = normalize_domain(node.domain)
                unsupported[i] = (f"node {node_label(node, i)} ({node.op_type}): not supported "
                                  f"(domain {domain or 'ai.onnx'}, opset {opsets.get(domain, 'not imported')})")
    tail = _downstream(graph, reads, set(unsupported))
    if tail:  # refused before any work when a weight in the tail is plain to see
        _refuse_trained_tail(proto, label, graph, order, reads, tail, {}, initializer_names, [], conservative=False)
    skip = _tail_only_tensors(graph, reads, tail) if tail else set()
    graph_outputs = [o.name for o in graph.output]
    if allow_tail:  # types where the import loads tensors; outputs once the tail is final
        check_supported(proto, label, skip | set(graph_outputs))

    constants: dict[str, torch.Tensor] = {}
    onnx_types: dict[str, int] = {}
    for init in graph.initializer:
        if init.name not in skip:  # never read by the imported part: not loaded at all
            constants[init.name] = tensor_proto_to_torch(init)
            onnx_types[init.name] = init.data_type
    for sparse in graph.sparse_initializer:
        if sparse.values.name not in skip:
            dense = onnx.numpy_helper.to_array(sparse)  # densified: runtimes do the same
            constants[sparse.values.name] = torch.from_numpy(dense.copy())
            onnx_types[sparse.values.name] = sparse.values.data_type

    tail_tensors = {out for i in tail for out in graph.node[i].output if out}
    folded_by: dict[str, tuple[str, ...]] = {}  # constant name -> nodes that computed it
    producers: dict[str, onnx.NodeProto] = {}
    plan_nodes: list[tuple[int, onnx.NodeProto, NodeContext, object]] = []
    for index in order:
        node = graph.node[index]
        if index in tail:
            continue
        if any(name in tail_tensors for name in reads[index]):  # downstream of a refused node
            tail.add(index)
            tail_tensors.update(out for out in node.output if out)
            continue
        impl, version = lookup(node.op_type, node.domain, opsets[normalize_domain(node.domain)])
        ctx = NodeContext(node, version, constants)
        try:
            fn = impl.builder(ctx)
        except (ValueError, NotImplementedError) as exc:  # an attribute value the op does not implement
            reason = f"node {node_label(node, index)} ({node.op_type}): {exc}"
            if not allow_tail:
                raise UnsupportedModelError(f"{label}: {reason}") from None
            refused[index] = reason
            tail.add(index)
            tail_tensors.update(out for out in node.output if out)
            continue
        for out in node.output:
            producers[out] = node
        inputs = [n for n in node.input if n]
        if node.op_type not in _NOT_FOLDABLE and all(n in constants for n in inputs):
            _fold(node, index, fn, constants, onnx_types, folded_by)
        else:
            plan_nodes.append((index, node, ctx, fn))

    if tail:
        _refuse_trained_tail(proto, label, graph, order, reads, tail, constants, initializer_names, refused.values())
    if allow_tail:  # a builder may have refused a node that makes an output torch cannot hold
        check_supported(proto, label, _tail_only_tensors(graph, reads, tail))
    output_names, tail_info = graph_outputs, None
    if tail:
        why = "; ".join(filter(None, [unsupported_ops_text(proto), *refused.values()]))
        tail_info = _describe_tail(graph, order, reads, tail, {**unsupported, **refused}, plan_nodes)
        output_names = [n for n in graph_outputs if n not in tail_info.outputs]
        output_names += [n for n in tail_info.boundary if n not in output_names]
        if not output_names:
            raise UnsupportedModelError(f"{label}: {why}; nothing before them is left to import")

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
        tail=tail_info,
    )


def _downstream(graph: onnx.GraphProto, reads: list[list[str]], start: set[int]) -> set[int]:
    """`start` and every node that reads, transitively, one of their outputs."""
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, names in enumerate(reads):
        for name in names:
            consumers[name].append(i)
    found, queue = set(start), list(start)
    while queue:
        for out in graph.node[queue.pop()].output:
            for j in consumers.get(out, ()) if out else ():
                if j not in found:
                    found.add(j)
                    queue.append(j)
    return found


def _tail_only_tensors(graph: onnx.GraphProto, reads: list[list[str]], tail: set[int]) -> set[str]:
    """Tensors that only the tail reads or makes: the import neither loads nor type-checks them.
    Graph inputs are never among them: the module takes every input."""
    head_reads = {n for i, names in enumerate(reads) if i not in tail for n in names}
    tail_made = {out for i in tail for out in graph.node[i].output if out}
    head_outputs = {o.name for o in graph.output if o.name not in tail_made}
    tail_reads = {n for i in tail for n in reads[i]}
    initializers = {t.name for t in graph.initializer} | {t.values.name for t in graph.sparse_initializer}
    inputs = {v.name for v in graph.input} - initializers
    return (tail_reads | tail_made) - head_reads - head_outputs - inputs


_WEIGHT_INPUTS = {"Conv": (1,), "ConvTranspose": (1,), "Gemm": (0, 1), "MatMul": (0, 1)}


def _refuse_trained_tail(proto, label, graph, order, reads, tail, constants, initializer_names, refused, conservative=True):
    """An unsupported op before or between prunable weights: the model cannot be trained, so
    it is refused as a whole, naming every unsupported operator."""
    consumer = _tail_weight_consumer(graph, order, reads, tail, constants, initializer_names, conservative)
    if consumer:
        why = "; ".join(filter(None, [unsupported_ops_text(proto), *refused]))
        raise UnsupportedModelError(f"{label}: {why}; {consumer} comes after them, so they cannot stay in an untrained tail")


def _tail_weight_consumer(graph, order, reads, tail, constants, initializer_names, conservative) -> str | None:
    """'node L (Op)' for the first tail node (or node of a tail subgraph) with a prunable weight.

    Weights are judged as weights.py does, on the import's constants (or shape-and-type
    stand-ins before loading). `conservative` also counts a weight input that depends on no
    graph input but that only the tail computes: it is a weight the import cannot train.
    """
    static = set(initializer_names)  # tensors that do not depend on any graph input
    for i in order:
        node = graph.node[i]
        if node.op_type not in _NOT_FOLDABLE and all(n in static for n in reads[i]):
            static.update(out for out in node.output if out)

    def search(nodes, known: dict[str, torch.Tensor], static: set[str]) -> str | None:
        for label, node in nodes:
            positions = _WEIGHT_INPUTS.get(node.op_type, ()) if not node.domain or node.domain == "ai.onnx" else ()
            names = [node.input[p] for p in positions if p < len(node.input) and node.input[p]]
            if conservative and any(n in static and n not in known for n in names):
                return f"node {label} ({node.op_type})"
            if positions:
                ctx = NodeContext(node, 0, {n: known[n] for n in names if n in known})
                if any(t.weight is not None for t in trainable_inputs(ctx, label)):
                    return f"node {label} ({node.op_type})"
            for g in subgraphs(node):
                inner = {**known, **_declared_constants(g)}
                found = search([(f"{label}/{node_label(n, k)}", n) for k, n in enumerate(g.node)], inner, static | set(inner))
                if found:
                    return found
        return None

    known = {**_declared_constants(graph), **constants}  # stand-ins for what the import did not load
    return search([(node_label(graph.node[i], i), graph.node[i]) for i in sorted(tail)], known, static)


def _declared_constants(graph: onnx.GraphProto) -> dict[str, torch.Tensor]:
    """Shape-and-type stand-ins (meta tensors, nothing loaded) for a subgraph's initializers
    and Constant values: enough to tell whether a Conv/Gemm/MatMul input is a weight."""
    protos = [(t.name, t.dims, t.data_type) for t in graph.initializer]
    protos += [(t.values.name, t.dims, t.values.data_type) for t in graph.sparse_initializer]
    protos += [
        (n.output[0], a.t.dims, a.t.data_type)
        for n in graph.node if n.op_type == "Constant" and n.output for a in n.attribute if a.name == "value"
    ]
    return {
        name: torch.empty(tuple(dims), dtype=ONNX_TO_TORCH[elem], device="meta")
        for name, dims, elem in protos if elem in ONNX_TO_TORCH
    }


def _describe_tail(graph, order, reads, tail, forced: dict[int, str], plan_nodes) -> Tail:
    computed = {out for _, node, _, _ in plan_nodes for out in node.output if out}
    boundary: list[str] = []
    for i in order:  # in the order the tail first reads them: deterministic, and natural to read
        if i in tail:
            boundary += [n for n in reads[i] if n in computed and n not in boundary]
    tail_made = {out for i in tail for out in graph.node[i].output if out}
    return Tail(
        nodes=tuple(node_label(graph.node[i], i) for i in sorted(tail)),
        ops=tuple(dict.fromkeys(graph.node[i].op_type for i in sorted(forced))),
        forced_by=tuple(forced[i] for i in sorted(forced)),
        boundary=tuple(boundary),
        graph_outputs=tuple(o.name for o in graph.output),
        outputs=tuple(o.name for o in graph.output if o.name in tail_made),
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
