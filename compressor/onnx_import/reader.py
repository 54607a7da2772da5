"""Reading an ONNX file safely, and refusing what the importer cannot run before any work."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

import onnx
from google.protobuf.message import DecodeError
from onnx import ModelProto

from ..errors import ModelLoadError, UnsupportedModelError, first_line
from .registry import DEFAULT_DOMAIN, lookup, normalize_domain, registered
from .tensors import ONNX_TO_TORCH

MIN_OPSET = 9  # the oldest default-domain opset the importer promises to handle


@dataclass
class LoadedModel:
    proto: ModelProto  # with external data loaded into the tensors
    path: Path | None
    uses_external_data: bool  # the file kept (some) tensors in separate data files


def _has_external_data(model: ModelProto) -> bool:
    return any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer
    ) or any(
        a.t.data_location == onnx.TensorProto.EXTERNAL
        for n in model.graph.node
        for a in n.attribute
        if a.type == onnx.AttributeProto.TENSOR
    )


def read_model(path) -> LoadedModel:
    """Parse `path` as an ONNX model (never modifying it), with one-line errors for bad input."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    if not path.is_file():
        raise ModelLoadError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise ModelLoadError(f"{path}: not readable")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: not a valid ONNX protobuf (truncated or another format): {first_line(exc)}") from None
    validate_structure(proto, str(path))
    external = _has_external_data(proto)
    if external:
        try:
            onnx.load_external_data_for_model(proto, str(path.parent))
        except (OSError, ValueError, onnx.checker.ValidationError) as exc:
            raise ModelLoadError(f"{path}: cannot read its external data: {first_line(exc)}") from None
    return LoadedModel(proto, path, external)


def validate_structure(proto: ModelProto, label: str) -> None:
    """Reject protobufs that parsed but are not ONNX models (any bytes may parse as some message)."""
    if proto.ir_version <= 0 or not proto.HasField("graph"):
        raise ModelLoadError(f"{label}: not an ONNX model (no IR version or no graph)")
    if not proto.graph.node:
        raise ModelLoadError(f"{label}: the ONNX graph has no nodes")
    if not proto.graph.output:
        raise ModelLoadError(f"{label}: the ONNX graph declares no outputs")
    opsets = opset_versions(proto)
    default = opsets.get(DEFAULT_DOMAIN)
    if default is None:
        raise ModelLoadError(f"{label}: the model imports no default-domain (ai.onnx) opset")
    if default < MIN_OPSET:
        raise UnsupportedModelError(
            f"{label}: opset {default} is older than the oldest supported ({MIN_OPSET}); "
            "upgrade it with onnx.version_converter first"
        )


def opset_versions(proto: ModelProto) -> dict[str, int]:
    return {normalize_domain(o.domain): int(o.version) for o in proto.opset_import}


def _all_nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _all_nodes(g)


def subgraphs(node: onnx.NodeProto):
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def node_supported(node: onnx.NodeProto, opsets: dict[str, int]) -> bool:
    """Whether the importer can run this node, including every node of its subgraphs."""
    domain = normalize_domain(node.domain)
    opset = opsets.get(domain)
    if opset is None or lookup(node.op_type, domain, opset) is None:
        return False
    return all(node_supported(n, opsets) for g in subgraphs(node) for n in g.node)


def node_reads(node: onnx.NodeProto) -> list[str]:
    """Tensor names a node reads: its inputs, then the outer-scope names its subgraphs use
    (If/Loop bodies read enclosing tensors without listing them as inputs)."""
    names = [n for n in node.input if n]
    for g in subgraphs(node):
        defined = {v.name for v in g.input} | {t.name for t in g.initializer}
        defined |= {s.values.name for s in g.sparse_initializer}
        defined |= {out for n in g.node for out in n.output}
        names += [name for n in g.node for name in node_reads(n) if name not in defined]
        names += [o.name for o in g.output if o.name not in defined]
    return list(dict.fromkeys(names))


def unsupported_ops(proto: ModelProto) -> list[tuple[str, str, int | None]]:
    """Every distinct (op_type, domain, opset) in the model that the importer cannot run."""
    registered()  # make sure every op module has registered itself
    opsets = opset_versions(proto)
    missing: dict[tuple[str, str, int | None], None] = {}
    for node in _all_nodes(proto.graph):
        domain = normalize_domain(node.domain)
        opset = opsets.get(domain)
        if opset is None or lookup(node.op_type, domain, opset) is None:
            missing[(node.op_type, domain or "ai.onnx", opset)] = None
    return list(missing)


def unsupported_ops_text(proto: ModelProto) -> str:
    """'unsupported operators: A (domain ..., opset ...), ...', or '' when there are none."""
    missing = unsupported_ops(proto)
    if not missing:
        return ""
    return "unsupported operators: " + ", ".join(
        f"{op} (domain {domain}, opset {opset if opset is not None else 'not imported'})"
        for op, domain, opset in missing
    )


def unsupported_types(proto: ModelProto, ignore: Collection[str] = ()) -> list[str]:
    """Element types of graph inputs, outputs and initializers that torch cannot hold
    (strings, float8/float4, sub-byte integers), as 'tensor: TYPE' entries. Tensors in
    `ignore` (used only by an untrained tail) are not checked."""
    graph = proto.graph
    found = []
    typed = [(v.name, v.type.tensor_type.elem_type) for v in list(graph.input) + list(graph.output) if v.type.HasField("tensor_type")]
    typed += [(t.name, t.data_type) for t in graph.initializer]
    ignore = set(ignore)
    for name, elem in typed:
        if elem != onnx.TensorProto.UNDEFINED and elem not in ONNX_TO_TORCH and name not in ignore:
            found.append(f"{name}: {onnx.TensorProto.DataType.Name(elem)}")
    return found


def check_supported(proto: ModelProto, label: str, tail_tensors: Collection[str] | None = None) -> None:
    """One error listing every unsupported operator and element type, before any work.

    With `tail_tensors` (the tensors only an untrained tail uses) the operators are left to
    the tail and only the types the imported part holds are checked.
    """
    problems = []
    if tail_tensors is None:
        ops = unsupported_ops_text(proto)
        if ops:
            problems.append(ops)
    types = unsupported_types(proto, tail_tensors or ())
    if types:
        problems.append("unsupported element types: " + ", ".join(types))
    if problems:
        raise UnsupportedModelError(f"{label}: " + "; ".join(problems))
