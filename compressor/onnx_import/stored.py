"""The tensors an ONNX file stores, read back as arrays: what the report counts and the tests check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto, numpy_helper

from ..errors import ModelLoadError


def stored_tensors(model: ModelProto, base_dir: str | Path = "") -> dict[str, np.ndarray]:
    """Every tensor stored in the main graph, by tensor name: initializers, sparse initializers
    (densified) and the values of Constant nodes (by output name). `base_dir` is where external
    data not yet loaded into `model` lives."""
    graph = model.graph
    arrays = {t.name: numpy_helper.to_array(t, str(base_dir)) for t in graph.initializer}
    for sparse in graph.sparse_initializer:
        arrays[sparse.values.name] = _densify(sparse, str(base_dir))
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output and node.attribute:
            arrays[node.output[0]] = _constant_value(node.attribute[0], str(base_dir))
    return arrays


def _constant_value(attr: onnx.AttributeProto, base_dir: str) -> np.ndarray:
    if attr.name == "value":
        return numpy_helper.to_array(attr.t, base_dir)
    if attr.name == "sparse_value":
        return _densify(attr.sparse_tensor, base_dir)
    if attr.name == "value_float":
        return np.array(attr.f, dtype=np.float32)
    if attr.name == "value_floats":
        return np.array(attr.floats, dtype=np.float32)
    if attr.name == "value_int":
        return np.array(attr.i, dtype=np.int64)
    if attr.name == "value_ints":
        return np.array(attr.ints, dtype=np.int64)
    if attr.name == "value_string":
        return np.array(attr.s, dtype=object)
    if attr.name == "value_strings":
        return np.array(list(attr.strings), dtype=object)
    raise ModelLoadError(f"Constant node has an unknown value attribute {attr.name!r}")


def _densify(sparse: onnx.SparseTensorProto, base_dir: str) -> np.ndarray:
    """A COO SparseTensorProto as a dense array (numpy_helper.to_array takes dense tensors only)."""
    values = numpy_helper.to_array(sparse.values, base_dir)
    indices = numpy_helper.to_array(sparse.indices, base_dir).astype(np.int64)
    shape = tuple(sparse.dims)
    dense = np.zeros(shape, dtype=values.dtype)
    if indices.ndim == 2:  # [NNZ, rank] coordinates rather than linear indices
        indices = np.ravel_multi_index(tuple(indices.T), shape) if indices.size else indices.reshape(-1)
    dense.reshape(-1)[indices] = values.reshape(-1)
    return dense
