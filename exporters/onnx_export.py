"""Write a module's current weights back into a copy of its original ONNX graph.

Everything but the weights stays as it was: nodes, names, opsets, inputs/outputs, metadata.
Weights that the importer folded out of constant subgraphs are written as initializers of the
same tensor name, and the subgraph nodes that only served them are dropped. Provenance goes
into `metadata_props` under the `onnx_compressor.` prefix.

The default artefact holds pruned weights dense, with explicit zeros: that is what TensorRT
reads (its parser ignores `sparse_initializer`). `sparse_initializers=True` writes a variant
that is smaller on disk only (onnxruntime densifies it at load).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto, numpy_helper

from compressor.errors import ExportError
from compressor.onnx_import.builder import node_label
from compressor.onnx_import.tensors import torch_to_numpy

from .parity import ParityResult, check_parity

METADATA_PREFIX = "onnx_compressor."
TOOL_VERSION = "0.1.0"
# Protobuf cannot serialise a message over 2 GiB: larger models must keep their data outside.
_PROTO_LIMIT = 2**31 - 1


@dataclass
class ExportResult:
    path: Path
    data_path: Path | None  # the external data file, when the model uses one
    file_bytes: int  # model file plus external data
    sparse_initializers: int  # weights stored as sparse_initializer
    removed_nodes: list[str] = field(default_factory=list)  # constant-subgraph nodes replaced by initializers
    parity: ParityResult | None = None

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "data_path": str(self.data_path) if self.data_path else None,
            "file_bytes": self.file_bytes,
            "sparse_initializers": self.sparse_initializers,
            "removed_nodes": self.removed_nodes,
            "parity": self.parity.to_dict() if self.parity else None,
        }


def export_onnx(
    module,
    path,
    *,
    sparse_initializers: bool = False,
    metadata: dict[str, str] | None = None,
    external_data: bool | None = None,
    check: bool = True,
    parity: bool = True,
    parity_inputs=None,
    input_shapes=None,
) -> ExportResult:
    """Write `module`'s weights into a copy of its ONNX graph at `path` (atomically).

    external_data: None keeps the original's choice (and switches it on past 2 GiB).
    check: run onnx.checker on the written file. parity: compare onnxruntime on the written
    file with the module on random (or given) inputs; the figure is in the result.
    """
    path = Path(path)
    if module.source_path is not None and _same_file(path, module.source_path):
        raise ExportError(f"{path}: refusing to overwrite the input model; choose another output path")
    model, removed = build_model_proto(module, sparse_initializers=sparse_initializers, metadata=metadata)
    if external_data is None:
        external_data = module.uses_external_data or model.ByteSize() > _PROTO_LIMIT
    data_path = _save_atomically(model, path, external_data)
    if check:
        try:
            onnx.checker.check_model(str(path))
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"{path}: the exported model fails onnx.checker: {str(exc).strip().splitlines()[0]}") from None
    result = ExportResult(
        path=path,
        data_path=data_path,
        file_bytes=path.stat().st_size + (data_path.stat().st_size if data_path else 0),
        sparse_initializers=len(model.graph.sparse_initializer),
        removed_nodes=removed,
    )
    if parity:
        result.parity = check_parity(module, path, inputs=parity_inputs, input_shapes=input_shapes)
    return result


def build_model_proto(
    module, *, sparse_initializers: bool = False, metadata: dict[str, str] | None = None
) -> tuple[ModelProto, list[str]]:
    """The original ModelProto with the module's current parameter values written in,
    and the labels of the constant-subgraph nodes that initializers replaced."""
    model = ModelProto()
    model.CopyFrom(module.onnx_model)
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    sparse_by_name = {s.values.name: s for s in graph.sparse_initializer}

    new_names: set[str] = set()
    folded_nodes: set[str] = set()
    for name, param in module.onnx_parameters().items():
        source = module.sources[name]
        tensor = numpy_helper.from_array(torch_to_numpy(param, source.onnx_type), name)
        if name in initializers:
            initializers[name].CopyFrom(tensor)  # also drops any external-data reference
        elif name in sparse_by_name:
            graph.sparse_initializer.remove(sparse_by_name.pop(name))
            graph.initializer.append(tensor)
        else:  # computed by a constant subgraph at import: becomes an initializer
            graph.initializer.append(tensor)
            new_names.add(name)
            folded_nodes.update(source.folded_from)

    removed = _remove_replaced_subgraphs(graph, new_names, folded_nodes)
    if sparse_initializers:
        _to_sparse_initializers(graph, set(module.weights))
    _add_provenance(model, module, metadata or {})
    return model, removed


def _remove_replaced_subgraphs(graph: onnx.GraphProto, new_names: set[str], folded_nodes: set[str]) -> list[str]:
    """Drop constant-subgraph nodes whose results are now initializers or no longer read."""
    if not new_names:
        return []
    labelled = [(node_label(node, i), node) for i, node in enumerate(graph.node)]
    graph_outputs = {o.name for o in graph.output}
    removed: list[str] = []
    alive = [(label, node) for label, node in labelled if not (set(node.output) - {""}) <= new_names]
    removed += [label for label, node in labelled if (set(node.output) - {""}) <= new_names]
    while True:  # then anything folded that nothing reads any more
        read = {name for _, node in alive for name in node.input} | graph_outputs
        dead = [
            (label, node) for label, node in alive
            if label in folded_nodes and not any(out in read for out in node.output if out)
        ]
        if not dead:
            break
        removed += [label for label, _ in dead]
        dead_ids = {id(node) for _, node in dead}
        alive = [(label, node) for label, node in alive if id(node) not in dead_ids]
    kept = [node for _, node in alive]
    removed_inputs = {name for label, node in labelled if label in removed for name in node.input}
    del graph.node[:]
    graph.node.extend(kept)
    # initializers that only fed the removed nodes are dead too
    read = {name for node in kept for name in node.input} | graph_outputs
    for init in list(graph.initializer):
        if init.name in removed_inputs and init.name not in read and init.name not in new_names:
            graph.initializer.remove(init)
    return removed


def _to_sparse_initializers(graph: onnx.GraphProto, weight_names: set[str]) -> None:
    """Store prunable weights as COO sparse tensors where that takes fewer bytes than dense."""
    for init in list(graph.initializer):
        if init.name not in weight_names:
            continue
        array = numpy_helper.to_array(init)
        flat = array.reshape(-1)
        nonzero = np.flatnonzero(flat)
        dense_bytes = flat.size * array.itemsize
        sparse_bytes = nonzero.size * (array.itemsize + 8)  # values + int64 linear indices
        if sparse_bytes >= dense_bytes:
            continue
        values = numpy_helper.from_array(flat[nonzero], init.name)
        indices = numpy_helper.from_array(nonzero.astype(np.int64), init.name + "_indices")
        sparse = onnx.helper.make_sparse_tensor(values, indices, list(array.shape))
        graph.initializer.remove(init)
        graph.sparse_initializer.append(sparse)


def _add_provenance(model: ModelProto, module, extra: dict[str, str]) -> None:
    entries = {"tool": f"onnx-compressor {TOOL_VERSION}"}
    if module.source_path is not None:
        entries["source"] = Path(module.source_path).name
        entries["source_sha256"] = _sha256(module.source_path)
    entries.update(extra)
    # earlier entries (e.g. an example model's default data) stay unless this export sets them
    keep = [p for p in model.metadata_props if p.key.removeprefix(METADATA_PREFIX) not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in entries.items():
        model.metadata_props.add(key=METADATA_PREFIX + key, value=str(value))


def _save_atomically(model: ModelProto, path: Path, external_data: bool) -> Path | None:
    """Write to a temporary folder beside `path`, then move into place (data file first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data_name = path.name + ".data"
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as tmp:
        tmp_model = Path(tmp) / path.name
        try:
            if external_data:
                onnx.save_model(
                    model, str(tmp_model), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data_name, size_threshold=1024,
                )
            else:
                onnx.save_model(model, str(tmp_model))
        except (OSError, ValueError) as exc:
            raise ExportError(f"{path}: cannot write the model: {exc}") from None
        tmp_data = Path(tmp) / data_name
        has_data = tmp_data.exists()  # none when every tensor was under the size threshold
        if has_data:
            os.replace(tmp_data, path.parent / data_name)
        os.replace(tmp_model, path)
    return path.parent / data_name if has_data else None


def _same_file(a: Path, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
