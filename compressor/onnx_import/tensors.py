"""Conversions between ONNX tensors/dtypes and torch tensors/dtypes."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, numpy_helper

ONNX_TO_TORCH: dict[int, torch.dtype] = {
    TensorProto.FLOAT: torch.float32,
    TensorProto.DOUBLE: torch.float64,
    TensorProto.FLOAT16: torch.float16,
    TensorProto.BFLOAT16: torch.bfloat16,
    TensorProto.INT8: torch.int8,
    TensorProto.INT16: torch.int16,
    TensorProto.INT32: torch.int32,
    TensorProto.INT64: torch.int64,
    TensorProto.UINT8: torch.uint8,
    # torch has few kernels for wider unsigned types: their values are held as int64
    # (exact for uint16/uint32; uint64 keeps its bit pattern)
    TensorProto.UINT16: torch.int64,
    TensorProto.UINT32: torch.int64,
    TensorProto.UINT64: torch.int64,
    TensorProto.BOOL: torch.bool,
}
_WIDENED = {TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64}
TORCH_TO_ONNX = {v: k for k, v in ONNX_TO_TORCH.items() if k not in _WIDENED}
FLOAT_ONNX_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


def torch_dtype(onnx_type: int) -> torch.dtype:
    try:
        return ONNX_TO_TORCH[onnx_type]
    except KeyError:
        name = TensorProto.DataType.Name(onnx_type) if onnx_type in TensorProto.DataType.values() else onnx_type
        raise TypeError(f"ONNX element type {name} has no torch equivalent") from None


def to_torch(array) -> torch.Tensor:
    """numpy array (including ml_dtypes bfloat16) or TensorProto -> torch tensor owning its memory."""
    if isinstance(array, TensorProto):
        array = numpy_helper.to_array(array)
    array = np.asarray(array)
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.view(np.uint16).copy()).view(torch.bfloat16)
    if array.dtype == np.uint16 or array.dtype == np.uint32 or array.dtype == np.uint64:
        # torch has only limited kernels for these; keep the values exactly, as int64
        return torch.from_numpy(array.astype(np.int64))
    return torch.from_numpy(np.array(array, copy=True))


def tensor_proto_to_torch(proto: TensorProto, base_dir: str | None = None) -> torch.Tensor:
    return to_torch(numpy_helper.to_array(proto, base_dir or ""))


def torch_to_numpy(tensor: torch.Tensor, onnx_type: int | None = None) -> np.ndarray:
    """torch tensor -> numpy array in the ONNX element type `onnx_type` (default: its own)."""
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    array = tensor.numpy()
    if onnx_type is not None:
        array = array.astype(onnx.helper.tensor_dtype_to_np_dtype(onnx_type), copy=False)
    return array
