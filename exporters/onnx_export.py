"""Write a module's current weights back into a copy of its original ONNX graph.

Everything but the weights stays as it was: nodes, names, opsets, inputs/outputs, metadata.
A weight held by a Constant node is written back into that node. Weights that the importer
folded out of longer constant subgraphs are written as initializers of the same tensor name,
and the subgraph nodes that only served them are dropped (with their now unused initializers,
graph inputs and value_info). Before IR 4 every initializer is also listed as a graph input.
Provenance goes into `metadata_props` under the `onnx_compressor.` prefix.

The default artefact holds pruned weights dense, with explicit zeros: that is what TensorRT
reads (its parser ignores `sparse_initializer`). `sparse_initializers=True` writes a variant
that is smaller on disk only (onnxruntime densifies it at load).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto, numpy_helper

from compressor.errors import ExportError
from compressor.files import sha256_file
from compressor.metadata import set_metadata
from compressor.onnx_import.builder import node_label
from compressor.onnx_import.stored import stored_tensors  # noqa: F401  (part of this package's API)
from compressor.onnx_import.tensors import torch_to_numpy
from compressor.version import __version__

from .parity import ParityResult, check_parity

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
    warnings: list[str] = field(default_factory=list)  # one line each, for the report

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "data_path": str(self.data_path) if self.data_path else None,
            "file_bytes": self.file_bytes,
            "sparse_initializers": self.sparse_initializers,
            "removed_nodes": self.removed_nodes,
            "parity": self.parity.to_dict() if self.parity else None,
            "warnings": self.warnings,
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
    dynamic_batch: bool = False,
) -> ExportResult:
    """Write `module`'s weights into a copy of its ONNX graph at `path`.

    The file is written beside `path` under a temporary name, checked there, and only then
    moved into place (with its data file), so a failed check never replaces an existing file.
    external_data: None keeps the original's choice (and switches it on past 2 GiB).
    check: onnx.checker with full_check (strict shape inference); where the input model itself
    fails that, the basic check and a warning in the result. parity: compare onnxruntime on the
    file with the module on random (or given) inputs; the figure is in the result.
    dynamic_batch: declare the batch dimension of the inputs (and of the outputs that carry it)
    symbolic, for a model whose batch the caller has checked to generalise.
    """
    path = Path(path)
    if module.source_path is not None and _same_file(path, module.source_path):
        raise ExportError(f"{path}: refusing to overwrite the input model; choose another output path")
    dense, removed = _dense_model_proto(module, metadata)
    if dynamic_batch:
        _declare_dynamic_batch(dense, module)
    model = dense
    if sparse_initializers:
        model = ModelProto()
        model.CopyFrom(dense)
        _to_sparse_initializers(model, set(module.weights))
    if external_data is None:
        external_data = module.uses_external_data or model.ByteSize() > _PROTO_LIMIT
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-")
    except OSError as exc:
        raise ExportError(f"{path}: cannot write there: {exc.strerror or exc}") from None
    with staging as tmp:
        tmp_model = Path(tmp) / path.name
        _write(model, tmp_model, external_data, label=path)
        warnings: list[str] = []
        if check:
            warnings = _check_file(tmp_model, dense if sparse_initializers else None, module, label=path)
        parity_result = None
        if parity:
            try:
                parity_result = check_parity(module, tmp_model, inputs=parity_inputs, input_shapes=input_shapes)
            except ExportError as exc:  # name the target, not the staging file
                raise ExportError(str(exc).replace(str(tmp_model), str(path)).replace(str(tmp), str(path.parent))) from None
        data_path = _move_into_place(tmp_model, path)
    return ExportResult(
        path=path,
        data_path=data_path,
        file_bytes=path.stat().st_size + (data_path.stat().st_size if data_path else 0),
        sparse_initializers=len(model.graph.sparse_initializer),
        removed_nodes=removed,
        parity=parity_result,
        warnings=warnings,
    )


def build_model_proto(
    module, *, sparse_initializers: bool = False, metadata: dict[str, str] | None = None
) -> tuple[ModelProto, list[str]]:
    """The original ModelProto with the module's current parameter values written in,
    and the labels of the constant-subgraph nodes that initializers replaced."""
    model, removed = _dense_model_proto(module, metadata)
    if sparse_initializers:
        _to_sparse_initializers(model, set(module.weights))
    return model, removed


def _dense_model_proto(module, metadata: dict[str, str] | None) -> tuple[ModelProto, list[str]]:
    model = ModelProto()
    model.CopyFrom(module.onnx_model)
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    sparse_by_name = {s.values.name: s for s in graph.sparse_initializer}
    constant_nodes = {
        node.output[0]: (node_label(node, i), node)
        for i, node in enumerate(graph.node)
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.output) == 1
    }

    new_names: set[str] = set()
    folded_nodes: set[str] = set()
    for name, param in module.onnx_parameters().items():
        source = module.sources[name]
        array = torch_to_numpy(param, source.onnx_type)
        constant = constant_nodes.get(name)
        if name in initializers:
            initializers[name].CopyFrom(numpy_helper.from_array(array, name))  # also drops any external-data reference
        elif name in sparse_by_name:
            graph.sparse_initializer.remove(sparse_by_name.pop(name))
            graph.initializer.append(numpy_helper.from_array(array, name))
        elif constant is not None and source.folded_from == (constant[0],):
            _set_constant_value(constant[1], array)  # a Constant node's own output: written in place
        else:  # computed by a longer constant subgraph at import: becomes an initializer
            graph.initializer.append(numpy_helper.from_array(array, name))
            new_names.add(name)
            folded_nodes.update(source.folded_from)

    removed, dropped_initializers = _remove_replaced_subgraphs(graph, new_names, folded_nodes)
    _drop_inputs(graph, dropped_initializers)
    if model.ir_version < 4:
        _list_initializers_as_inputs(graph)
    _prune_value_info(graph, new_names)
    _add_provenance(model, module, metadata or {})
    return model, removed


def _set_constant_value(node: onnx.NodeProto, array: np.ndarray) -> None:
    """Write `array` into a Constant node's value, in the attribute form the node already used
    where that form can hold it (value_float(s) for float32 scalars/vectors)."""
    attr = node.attribute[0]
    if attr.name == "value_float" and array.dtype == np.float32 and array.ndim == 0:
        attr.f = float(array)
    elif attr.name == "value_floats" and array.dtype == np.float32 and array.ndim == 1:
        del attr.floats[:]
        attr.floats.extend(array.tolist())
    else:
        tensor_name = attr.t.name if attr.name == "value" else ""
        del node.attribute[:]
        node.attribute.append(onnx.helper.make_attribute("value", numpy_helper.from_array(array, tensor_name)))


def _remove_replaced_subgraphs(
    graph: onnx.GraphProto, new_names: set[str], folded_nodes: set[str]
) -> tuple[list[str], set[str]]:
    """Drop constant-subgraph nodes whose results are now initializers or no longer read;
    returns their labels and the names of the initializers only they read (dropped too)."""
    if not new_names:
        return [], set()
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
    dropped = {
        init.name for init in graph.initializer
        if init.name in removed_inputs and init.name not in read and init.name not in new_names
    }
    keep_inits = [init for init in graph.initializer if init.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(keep_inits)
    return removed, dropped


def _drop_inputs(graph: onnx.GraphProto, names: set[str]) -> None:
    """Graph inputs that only declared a dropped initializer would become required inputs."""
    if not names:
        return
    keep = [vi for vi in graph.input if vi.name not in names]
    del graph.input[:]
    graph.input.extend(keep)


def _list_initializers_as_inputs(graph: onnx.GraphProto) -> None:
    """Before IR 4 every initializer must also be a graph input of its type and shape."""
    inputs = {vi.name: vi for vi in graph.input}
    for init in graph.initializer:
        declared = inputs.get(init.name)
        if declared is None:
            graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        elif not _declares(declared, init):
            declared.type.CopyFrom(onnx.helper.make_tensor_type_proto(init.data_type, list(init.dims)))


def _declares(vi: onnx.ValueInfoProto, tensor: onnx.TensorProto) -> bool:
    """Whether `vi`'s type admits `tensor` (same element type; rank and fixed dims agree)."""
    if not vi.type.HasField("tensor_type"):
        return False
    t = vi.type.tensor_type
    if t.elem_type != tensor.data_type:
        return False
    if not t.HasField("shape"):
        return True
    if len(t.shape.dim) != len(tensor.dims):
        return False
    return all(not d.HasField("dim_value") or d.dim_value == n for d, n in zip(t.shape.dim, tensor.dims))


def _prune_value_info(graph: onnx.GraphProto, new_initializers: set[str]) -> None:
    """value_info only for tensors that still exist; none for the new initializers (the tensor
    states its own type and shape, and a stale entry could contradict it)."""
    defined = {vi.name for vi in graph.input} | {t.name for t in graph.initializer}
    defined |= {s.values.name for s in graph.sparse_initializer}
    defined |= {out for node in graph.node for out in node.output}
    keep = [vi for vi in graph.value_info if vi.name in defined and vi.name not in new_initializers]
    if len(keep) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(keep)


def _to_sparse_initializers(model: ModelProto, weight_names: set[str]) -> None:
    """Store prunable weights as COO sparse tensors where that takes fewer bytes than dense:
    initializers as sparse_initializer, Constant-node weights as sparse_value (opset 11+)."""
    graph = model.graph
    sparse_names: set[str] = set()
    for init in list(graph.initializer):
        if init.name in weight_names:
            sparse = _sparse_if_smaller(numpy_helper.to_array(init), init.name)
            if sparse is not None:
                graph.initializer.remove(init)
                graph.sparse_initializer.append(sparse)
                sparse_names.add(init.name)
    # a graph input declaring the weight as a dense tensor would contradict the sparse one
    _drop_inputs(graph, sparse_names)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 11:  # Constant has had sparse_value since opset 11
        return
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output and node.output[0] in weight_names:
            attr = node.attribute[0]
            if attr.name != "value":
                continue
            sparse = _sparse_if_smaller(numpy_helper.to_array(attr.t), attr.t.name)
            if sparse is not None:
                del node.attribute[:]
                node.attribute.append(onnx.helper.make_attribute("sparse_value", sparse))


def _sparse_if_smaller(array: np.ndarray, name: str) -> onnx.SparseTensorProto | None:
    flat = array.reshape(-1)
    nonzero = np.flatnonzero(flat)
    dense_bytes = flat.size * array.itemsize
    sparse_bytes = nonzero.size * (array.itemsize + 8)  # values + int64 linear indices
    if sparse_bytes >= dense_bytes:
        return None
    values = numpy_helper.from_array(flat[nonzero], name)
    indices = numpy_helper.from_array(nonzero.astype(np.int64), name + "_indices")
    return onnx.helper.make_sparse_tensor(values, indices, list(array.shape))


def _declare_dynamic_batch(model: ModelProto, module) -> None:
    """First dimension of the model's inputs, and of the outputs that share the inputs' fixed
    batch, becomes the symbol 'batch'; value_info (recorded at the old batch) is dropped."""
    graph = model.graph
    fixed = set()
    for value in graph.input:
        if value.name in module.input_names and value.type.tensor_type.shape.dim:
            dim = value.type.tensor_type.shape.dim[0]
            if dim.HasField("dim_value"):
                fixed.add(dim.dim_value)
            dim.Clear()
            dim.dim_param = "batch"
    for value in graph.output:
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value in fixed:
            dims[0].Clear()
            dims[0].dim_param = "batch"
    del graph.value_info[:]


def _add_provenance(model: ModelProto, module, extra: dict[str, str]) -> None:
    entries = {"tool": f"onnx-compressor {__version__}"}
    if module.source_path is not None:
        entries["source"] = Path(module.source_path).name
        entries["source_sha256"] = sha256_file(module.source_path)
    entries.update(extra)
    # earlier entries (e.g. an example model's default data) stay unless this export sets them
    set_metadata(model, entries)


def _write(model: ModelProto, tmp_model: Path, external_data: bool, label: Path) -> None:
    try:
        if external_data:
            # one data file named after the model; Constant-node tensors go there too
            onnx.save_model(
                model, str(tmp_model), save_as_external_data=True, all_tensors_to_one_file=True,
                location=label.name + ".data", size_threshold=1024, convert_attribute=True,
            )
        else:
            onnx.save_model(model, str(tmp_model))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{label}: cannot write the model: {_one_line(exc)}") from None


_CHECK_ERRORS = (onnx.checker.ValidationError, onnx.shape_inference.InferenceError)


def _check_file(tmp_model: Path, dense: ModelProto | None, module, label: Path) -> list[str]:
    """onnx.checker with full_check on what was written; returns the warnings for the result.

    Shape inference types a sparse_initializer as a sparse tensor, which no operator accepts, so
    the sparse variant (`dense` given) gets the full check on its dense twin and the basic check
    as written. Where the full check fails, it falls back to the basic check only if the input
    model fails the full check itself (then the export cannot be held to more than its input)."""
    if dense is not None and dense.ByteSize() > _PROTO_LIMIT:
        return _basic_check(tmp_model, label, ["sparse variant over 2 GiB: onnx.checker ran without full_check"])
    try:
        onnx.checker.check_model(str(tmp_model) if dense is None else dense, full_check=True)
    except _CHECK_ERRORS as exc:
        problem = _one_line(exc)
    else:
        return _basic_check(tmp_model, label, []) if dense is not None else []
    original = _full_check_failure(module)
    if original is None:
        raise ExportError(f"{label}: the exported model fails onnx.checker (full check): {problem}")
    return _basic_check(tmp_model, label, [
        f"the input model itself fails onnx.checker's full check ({original}); the export got the basic check only"
    ])


def _basic_check(tmp_model: Path, label: Path, warnings: list[str]) -> list[str]:
    try:
        onnx.checker.check_model(str(tmp_model))
    except _CHECK_ERRORS as exc:
        raise ExportError(f"{label}: the exported model fails onnx.checker: {_one_line(exc)}") from None
    return warnings


def _full_check_failure(module) -> str | None:
    """Why the input model fails the full check (one line), or None when it passes."""
    source = module.source_path
    try:
        if source is not None:
            onnx.checker.check_model(str(source), full_check=True)
        elif module.onnx_model.ByteSize() <= _PROTO_LIMIT:
            onnx.checker.check_model(module.onnx_model, full_check=True)
    except _CHECK_ERRORS as exc:
        return _one_line(exc)
    return None


def _move_into_place(tmp_model: Path, path: Path) -> Path | None:
    """Move the checked model (and its data file) from the staging folder to `path`. An
    existing data file is kept aside until the model is in place, and restored if that fails."""
    data_name = path.name + ".data"
    tmp_data, data = tmp_model.parent / data_name, path.parent / data_name
    has_data = tmp_data.exists()  # none when every tensor was under the size threshold
    backup = tmp_model.parent / (data_name + ".previous")
    try:
        if has_data:
            if data.exists():
                os.replace(data, backup)
            os.replace(tmp_data, data)
        os.replace(tmp_model, path)
    except OSError as exc:
        if has_data and backup.exists():
            os.replace(backup, data)
        elif has_data and data.exists() and not tmp_data.exists():
            data.unlink()  # ours, and no model refers to it
        raise ExportError(f"{path}: cannot move the model into place: {exc.strerror or exc}") from None
    return data if has_data else None


def _one_line(exc: BaseException) -> str:
    lines = [" ".join(line.split()) for line in str(exc).strip().splitlines()]
    return "; ".join(line for line in lines if line) or type(exc).__name__


def _same_file(a: Path, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False
