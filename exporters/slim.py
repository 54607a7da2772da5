"""Physical channel removal (issue 12, item 3): the user's ONNX graph rewritten with smaller tensors.

    analysis = analyze_channels(model, feeds)
    result = remove_channels(model, analysis, {group_id: [channel, ...]}, feeds)
    write_slim(result.model, "slim.onnx")   # result.to_dict() for report.json

The model given is the *masked* model: the channels to remove are already dead there (their
producer weights zeroed). The slim model computes what it computes: every constant position of a
removed channel is sliced out (weights on both axes, biases, normalisation parameters, constants
of elementwise operators, constants computed from constants become initializers), operators whose
attributes or constant inputs hold channel counts are rewritten (a depthwise Conv's group, Split
sizes, Slice bounds, Reshape targets, Resize sizes), and the constant a removed channel still
carries is folded into its consumers' biases (slim_fold.py). A requested channel that cannot go
is kept, with the reason. The masked and the slim model are compared in onnxruntime on two inputs;
a difference beyond the tolerance raises ExportError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from compressor.errors import ExportError
from compressor.files import write_atomic
from compressor.runtimes import get_runtime
from compressor.structure import ChannelAnalysis
from compressor.onnx_import.builder import node_attr, node_label
from compressor.structure.graph import constant_values, run_all

from .parity import PARITY_RUNTIME, output_error
from .slim_fold import Consumer, Decision, bias_delta, consumers, decide, scales


@dataclass
class GroupOutcome:
    removed: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)  # channels not requested, and refused ones
    refused: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"removed": self.removed, "kept": len(self.kept), "refused": {str(c): r for c, r in self.refused.items()}}


@dataclass
class SlimResult:
    model: onnx.ModelProto
    groups: dict[int, GroupOutcome]
    folded: int  # constants of removed channels folded into a consumer's bias (one per channel and consumer)
    dropped: int  # negligible constants dropped before a padded consumer
    params_before: int
    params_after: int
    max_relative_error: float
    per_output: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # constant subgraphs replaced, checks skipped

    @property
    def removed(self) -> int:
        return sum(len(o.removed) for o in self.groups.values())

    def to_dict(self) -> dict:
        return {
            "groups": {str(g): o.to_dict() for g, o in self.groups.items()},
            "channels_removed": self.removed, "constants_folded": self.folded, "constants_dropped": self.dropped,
            "params_before": self.params_before, "params_after": self.params_after,
            "parity": {"runtime": PARITY_RUNTIME, "max_relative_error": self.max_relative_error,
                       "per_output": self.per_output},
            "notes": self.notes,
        }


def remove_channels(model: onnx.ModelProto, analysis: ChannelAnalysis, remove: Mapping[int, Sequence[int]],
                    feeds: Mapping[str, np.ndarray], *, tolerance: float = 1e-4, seed: int = 0) -> SlimResult:
    """The slim copy of `model` without the channels `remove` names (group id -> channel indices in
    the group's order) that can go; `model` is not modified."""
    by_id = {g.id: g for g in analysis.groups}
    second = second_feeds(feeds, seed)
    runs = [{**feeds, **run_all(model, feeds)}, {**second, **run_all(model, second)}]
    by_weight = consumers(analysis)
    scale = scales(runs, {t for g in analysis.groups for t, _ in g.activations()}
                   | {c.x for users in by_weight.values() for c in users})
    weights = constant_values(model)[0]  # the consumers' slices as they are in `model` (masked or not)
    outcomes: dict[int, GroupOutcome] = {}
    decisions: dict[tuple[int, int], Decision] = {}
    for gid, channels in remove.items():
        if gid not in by_id:
            raise ValueError(f"no channel group {gid}")
        group = by_id[gid]
        wanted = sorted({int(c) for c in channels})
        if any(not 0 <= c < group.size for c in wanted):
            raise ValueError(f"group {gid} has {group.size} channels: cannot remove {wanted}")
        outcome = outcomes[gid] = GroupOutcome()
        for c in wanted:
            if group.blocked:
                outcome.refused[c] = "group blocked: " + "; ".join(group.blocked)
                continue
            d = decide(group, c, analysis, runs, scale, by_weight, tolerance, weights)
            if d.refused:
                outcome.refused[c] = d.refused
            else:
                outcome.removed.append(c)
                decisions[(gid, c)] = d
        outcome.kept = [c for c in range(group.size) if c not in outcome.removed]
    deletions = _deletions(analysis, outcomes)
    slim = onnx.ModelProto()
    slim.CopyFrom(model)
    consts = {**runs[0], **weights}
    editor = _Editor(slim, analysis, deletions, consts)
    editor.apply_rewrites()
    folded = editor.fold(decisions, by_weight)
    editor.slice_constants()
    editor.finish()
    result = SlimResult(slim, outcomes, folded, sum(len(d.dropped) for d in decisions.values()),
                        count_params(model), count_params(slim), 0.0, notes=editor.notes)
    _check(result, model, [feeds, second], tolerance)
    return result


def second_feeds(feeds: Mapping[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Different random inputs of the same shapes, over the range of the given ones (integer and
    boolean inputs, which may be indices or lengths, are reused as they are)."""
    rng = np.random.default_rng(seed + 7919)
    out = {}
    for name, value in feeds.items():
        value = np.asarray(value)
        if value.dtype.kind != "f" or value.size == 0:
            out[name] = value
            continue
        lo, hi = float(value.min()), float(value.max())
        if hi - lo < 1e-3:
            lo, hi = lo - 1.0, hi + 1.0
        out[name] = rng.uniform(lo, hi, value.shape).astype(value.dtype)
    return out


def count_params(model: onnx.ModelProto) -> int:
    """Elements of every stored tensor: initializers and Constant node values."""
    total = sum(int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    total += int(np.prod(a.t.dims, dtype=np.int64))
    return total


def write_slim(model: onnx.ModelProto, path, source=None) -> Path:
    """Write the slim model atomically at `path`; never over `source` (the masked model's file)."""
    path = Path(path)
    if source is not None and path.resolve() == Path(source).resolve():
        raise ExportError(f"the slim model would overwrite its source {source}")
    return write_atomic(path, model.SerializeToString())


def _deletions(analysis: ChannelAnalysis, outcomes: Mapping[int, GroupOutcome]) -> dict[str, dict[int, list[int]]]:
    """tensor -> axis -> the indices removed there (every position of every removed channel)."""
    found: dict[str, dict[int, set[int]]] = {}
    by_id = {g.id: g for g in analysis.groups}
    for gid, outcome in outcomes.items():
        for (tensor, axis), per_channel in by_id[gid].positions.items():
            for c in outcome.removed:
                found.setdefault(tensor, {}).setdefault(axis, set()).update(per_channel[c])
    return {t: {a: sorted(i) for a, i in axes.items() if i} for t, axes in found.items()}


class _Editor:
    """Edits the copy: nodes addressed by their label in the analysed graph (the copy keeps the
    order until `finish`)."""

    def __init__(self, model: onnx.ModelProto, analysis: ChannelAnalysis, deletions, consts: Mapping[str, np.ndarray]):
        self.model, self.graph, self.analysis, self.deletions = model, model.graph, analysis, deletions
        self.consts = consts  # the model's constant values (its own, not the analysed graph's)
        self.index = {node_label(n, i): i for i, n in enumerate(model.graph.node)}
        self.names = {n for node in model.graph.node for n in list(node.input) + list(node.output)} \
            | {t.name for t in model.graph.initializer} | {v.name for v in model.graph.input}
        self.new_initializers: list[onnx.TensorProto] = []
        self.new_nodes: list[tuple[int, onnx.NodeProto]] = []  # inserted after the node at index
        self.replaced: dict[str, np.ndarray] = {}  # tensor -> new (sliced) value
        self.notes: list[str] = []
        self.opset = next((e.version for e in model.opset_import if e.domain in ("", "ai.onnx")), 1)

    def node(self, label: str) -> onnx.NodeProto:
        return self.graph.node[self.index[label]]

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    def constant(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.new_initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def removed(self, tensor: str, axis: int) -> list[int]:
        return self.deletions.get(tensor, {}).get(axis, [])

    def size(self, tensor: str, axis: int) -> int:
        return self.analysis.graph.shapes[tensor][axis]

    def kept(self, tensor: str, axis: int) -> int:
        return self.size(tensor, axis) - len(self.removed(tensor, axis))

    # ---- operators holding channel counts ----------------------------------------------------------
    def apply_rewrites(self) -> None:
        for rw in self.analysis.rewrites:
            if not any(self.removed(t, a) for t, a in rw.tensors):
                continue
            getattr(self, f"_rewrite_{rw.kind}")(self.node(rw.node), *rw.tensors)

    def _rewrite_conv_group(self, node, out) -> None:
        _set_attr(node, "group", self.kept(*out))

    def _rewrite_split(self, node, *outs) -> None:
        sizes = [self.kept(*o) for o in outs]
        if self.opset < 13:
            _set_attr(node, "split", sizes)
            return
        has_input = len(node.input) > 1 and node.input[1]
        if not has_input and len(set(sizes)) == 1:
            return  # an equal split (by output count or num_outputs) stays equal
        name = self.constant(f"{node.output[0]}_split", np.array(sizes, dtype=np.int64))
        if has_input:
            node.input[1] = name
        else:
            node.input.append(name)
            _del_attr(node, "num_outputs")

    def _rewrite_slice(self, node, x, y) -> None:
        tensor, axis = x
        size = self.size(tensor, axis)
        gone = set(self.removed(tensor, axis))
        g = self.analysis.graph
        if len(node.input) > 1:
            starts = g.const(node.input[1]).copy()  # starts, ends, axes share one index type: kept
            ends = g.const(node.input[2]).copy()
            axes = g.const(node.input[3]).tolist() if len(node.input) > 3 and node.input[3] else list(range(len(starts)))
        else:
            starts = np.array(node_attr(node, "starts"), dtype=np.int64)
            ends = np.array(node_attr(node, "ends"), dtype=np.int64)
            axes = list(node_attr(node, "axes", list(range(len(starts)))))
        k = [int(v) % len(g.shapes[tensor]) for v in axes].index(axis)
        start = int(np.clip(starts[k] + (size if starts[k] < 0 else 0), 0, size))
        starts[k] = start - sum(1 for i in gone if i < start)
        ends[k] = starts[k] + self.kept(*y)
        if len(node.input) > 1:
            node.input[1] = self.constant(f"{node.output[0]}_starts", starts)
            node.input[2] = self.constant(f"{node.output[0]}_ends", ends)
        else:
            _set_attr(node, "starts", starts.tolist())
            _set_attr(node, "ends", ends.tolist())

    def _rewrite_reshape(self, node, y) -> None:
        target = self.analysis.graph.const(node.input[1]).astype(np.int64).copy()
        target[y[1]] = self.kept(*y)
        node.input[1] = self.constant(f"{node.output[0]}_shape", target)

    def _rewrite_resize_sizes(self, node, y) -> None:
        g = self.analysis.graph
        sizes = g.const(node.input[3]).astype(np.int64).copy()
        axes = node_attr(node, "axes", None)
        rank = len(g.shapes[y[0]])
        k = y[1] if axes is None else [int(v) % rank for v in axes].index(y[1])
        sizes[k] = self.kept(*y)
        node.input[3] = self.constant(f"{node.output[0]}_sizes", sizes)

    # ---- folding -------------------------------------------------------------------------------------
    def fold(self, decisions: Mapping[tuple[int, int], Decision], by_weight) -> int:
        users = {c.label: c for cs in by_weight.values() for c in cs}
        per_user: dict[str, list] = {}
        for d in decisions.values():
            for f in d.folds:
                per_user.setdefault(f.consumer, []).append(f)
        for label, folds in per_user.items():
            self._fold_into(users[label], bias_delta(users[label], folds, self.analysis.graph, self.consts))
        return sum(len(f) for f in per_user.values())

    def _fold_into(self, user: Consumer, delta: np.ndarray) -> None:
        g = self.analysis.graph
        node = self.node(user.label)
        dtype = self.consts[user.weight].dtype
        op = node.op_type
        out_axis = len(g.shapes[user.y]) - 1 if op == "MatMul" else 1
        gone = self.removed(user.y, out_axis)
        if op == "MatMul":
            bias = np.delete(delta, gone).astype(dtype)
            inner = self.fresh(f"{user.y}_matmul")
            node.output[0] = inner
            name = self.constant(f"{user.y}_folded_bias", bias)
            self.new_nodes.append((self.index[user.label], helper.make_node(
                "Add", [inner, name], [user.y], name=self.fresh(f"{user.label}_folded_bias"))))
            return
        old = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if op == "Gemm":
            beta = float(node_attr(node, "beta", 1.0))
            if old is None or beta == 0.0:
                value, beta = delta, 1.0
                _set_attr(node, "beta", 1.0)
            else:
                value = np.asarray(old, dtype=np.float64) + delta / beta
        else:  # Conv
            value = delta + (np.asarray(old, dtype=np.float64) if old is not None else 0.0)
        value = np.delete(value, gone, axis=value.ndim - 1).astype(dtype)
        name = self.constant(f"{user.y}_folded_bias", value)
        if len(node.input) > 2:
            node.input[2] = name
        else:
            node.input.append(name)

    # ---- constants ---------------------------------------------------------------------------------
    def slice_constants(self) -> None:
        g = self.analysis.graph
        for tensor, axes in self.deletions.items():
            if tensor not in g.constants:
                continue
            value = self.consts[tensor]
            for axis, indices in axes.items():
                value = np.delete(value, indices, axis=axis)
            self.replaced[tensor] = value
        initializers = {t.name: t for t in self.graph.initializer}
        producers = {o: n for n in self.graph.node for o in n.output if o}
        stored = []
        for tensor, value in self.replaced.items():
            if tensor in initializers:
                initializers[tensor].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), tensor))
                self._fix_input_declaration(tensor, value)
            elif producers.get(tensor) is not None and producers[tensor].op_type == "Constant":
                node = producers[tensor]
                del node.attribute[:]
                node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(value, tensor)))
            else:  # computed from constants: an initializer now, its producer left unused
                node = producers[tensor]
                self.new_initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), tensor))
                for i, out in enumerate(node.output):
                    if out == tensor:
                        node.output[i] = self.fresh(f"{tensor}_unsliced")
                stored.append(f"{tensor} ({node.op_type})")
        if stored:
            self.notes.append(f"{len(stored)} constant(s) computed from constants stored sliced as initializers: "
                              + ", ".join(stored[:5]) + (" ..." if len(stored) > 5 else ""))

    def _fix_input_declaration(self, tensor: str, value: np.ndarray) -> None:
        for vi in self.graph.input:  # IR < 4 lists initializers as graph inputs
            if vi.name == tensor and vi.type.HasField("tensor_type"):
                vi.type.tensor_type.shape.CopyFrom(helper.make_tensor_type_proto(1, list(value.shape)).tensor_type.shape)

    def finish(self) -> None:
        graph = self.graph
        nodes = list(graph.node)
        after: dict[int, list[onnx.NodeProto]] = {}
        for i, n in self.new_nodes:
            after.setdefault(i, []).append(n)
        ordered = []
        for i, n in enumerate(nodes):
            ordered.append(n)
            ordered.extend(after.get(i, []))
        graph.initializer.extend(self.new_initializers)
        # nodes computing only constants that nothing reads any more
        outputs = {o.name for o in graph.output}
        removed = []
        while True:
            used = {name for n in ordered for name in n.input} | outputs | _subgraph_reads(ordered)
            dead = [n for n in ordered if all(not o or o not in used for o in n.output) and _constant_only(n, self.analysis)]
            if not dead:
                break
            removed += dead
            ids = {id(n) for n in dead}
            ordered = [n for n in ordered if id(n) not in ids]
        if removed:
            self.notes.append(f"removed {len(removed)} node(s) computing constants no longer read: "
                              + ", ".join(sorted({n.op_type for n in removed})))
        del graph.node[:]
        graph.node.extend(ordered)
        used = {name for n in ordered for name in n.input} | outputs | _subgraph_reads(ordered)
        unused = {t.name for t in graph.initializer if t.name not in used}
        if unused:
            kept = [t for t in graph.initializer if t.name not in unused]
            del graph.initializer[:]
            graph.initializer.extend(kept)
            inputs = [v for v in graph.input if v.name not in unused]
            del graph.input[:]
            graph.input.extend(inputs)
        changed = set(self.deletions) | {n for n in self.names if n.endswith("_unsliced")}
        stale = [v for v in graph.value_info if v.name in changed]
        for v in stale:
            graph.value_info.remove(v)


def _constant_only(node: onnx.NodeProto, analysis: ChannelAnalysis) -> bool:
    """A node whose outputs are all constants (or renamed away): safe to drop when unused."""
    consts = analysis.graph.constants
    return all(not o or o in consts or o.endswith("_unsliced") for o in node.output) and bool(node.output)


def _subgraph_reads(nodes) -> set[str]:
    """Names read inside control-flow subgraphs (If/Loop/Scan bodies) from the outer scope."""
    found = set()
    for n in nodes:
        for a in n.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                for inner in sub.node:
                    found.update(inner.input)
                found |= _subgraph_reads(list(sub.node))
    return found


def _set_attr(node: onnx.NodeProto, name: str, value) -> None:
    _del_attr(node, name)
    node.attribute.append(helper.make_attribute(name, value))


def _del_attr(node: onnx.NodeProto, name: str) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)


def _check(result: SlimResult, masked: onnx.ModelProto, feeds_list, tolerance: float) -> None:
    """Shape inference, the checker, and parity with the masked model on both inputs."""
    slim = result.model
    try:
        inferred = onnx.shape_inference.infer_shapes(slim)
        del slim.graph.value_info[:]
        slim.graph.value_info.extend(inferred.graph.value_info)
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError) as exc:
        raise ExportError(f"shape inference fails on the slim model: {exc}") from None
    try:
        onnx.checker.check_model(slim, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        try:
            onnx.checker.check_model(masked, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError):
            result.notes.append(f"the checker rejects the slim model as it rejects the input model: {exc}")
        else:
            raise ExportError(f"the slim model fails the ONNX checker: {exc}") from None
    runtime = get_runtime(PARITY_RUNTIME)
    dense, small = runtime.open(masked), runtime.open(slim)
    names = [o.name for o in masked.graph.output]
    worst: dict[str, float] = {}
    for feeds in feeds_list:
        want = dense.run({n: feeds[n] for n in dense.input_names})
        got = small.run({n: feeds[n] for n in small.input_names})
        for name, w, g in zip(names, want, got):
            worst[name] = max(worst.get(name, 0.0), output_error(g, w))
    result.per_output = worst
    result.max_relative_error = max(worst.values(), default=0.0)
    if result.max_relative_error > tolerance:
        raise ExportError(f"the slim model differs from the masked model by {result.max_relative_error:.3g} "
                          f"(relative; tolerance {tolerance:g}) in {PARITY_RUNTIME}")
