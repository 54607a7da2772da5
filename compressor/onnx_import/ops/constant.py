"""Constants and generated tensors: Constant, ConstantOfShape, Range."""

from __future__ import annotations

import math

import onnx
import torch
from onnx import numpy_helper

from ..registry import register
from ..tensors import to_torch

# since_versions after 21 (23, 24, 25) only add element types (float4e2m1, float8e8m0, int2).
_TYPE_ONLY_NEWER = [23, 24, 25]


# ---- Constant ----------------------------------------------------------------------------------


def _dense_from_sparse(sparse: onnx.SparseTensorProto) -> torch.Tensor:
    values = to_torch(numpy_helper.to_array(sparse.values)).reshape(-1)
    dims = [int(d) for d in sparse.dims]
    dense = torch.zeros(math.prod(dims), dtype=values.dtype)
    if values.numel():
        indices = to_torch(numpy_helper.to_array(sparse.indices)).long()
        if indices.dim() == 2:  # [NNZ, rank] coordinates -> linear positions
            strides = torch.tensor([math.prod(dims[i + 1 :]) for i in range(len(dims))], dtype=torch.int64)
            indices = (indices * strides).sum(dim=1)
        dense[indices.reshape(-1)] = values
    return dense.reshape(dims)


def _constant_value(ctx) -> torch.Tensor:
    attrs = ctx.attrs
    given = [name for name in attrs if name.startswith("value") or name == "sparse_value"]
    if len(given) != 1:
        raise ValueError(f"Constant needs exactly one value attribute, got {given or 'none'}")
    name = given[0]
    value = attrs[name]
    if name == "value":
        return value
    if name == "sparse_value":
        return _dense_from_sparse(value)
    if name == "value_float":
        return torch.tensor(float(value), dtype=torch.float32)
    if name == "value_floats":
        return torch.tensor([float(v) for v in value], dtype=torch.float32)
    if name == "value_int":
        return torch.tensor(int(value), dtype=torch.int64)
    if name == "value_ints":
        return torch.tensor([int(v) for v in value], dtype=torch.int64)
    if name in ("value_string", "value_strings"):
        raise ValueError(f"Constant {name}: string tensors are not supported")
    raise ValueError(f"Constant attribute {name!r} is not supported")


@register("Constant", versions=[9, 11, 12, 13, 19, 21, *_TYPE_ONLY_NEWER])
def constant(ctx):
    value = _constant_value(ctx)

    def fn():
        return value

    return fn


# ---- ConstantOfShape ---------------------------------------------------------------------------


@register("ConstantOfShape", versions=[9, 20, 21, *_TYPE_ONLY_NEWER])
def constant_of_shape(ctx):
    value = ctx.attr("value")
    if value is None:
        fill, dtype = 0.0, torch.float32
    else:
        if value.numel() != 1:
            raise ValueError(f"ConstantOfShape value must hold one element, got {value.numel()}")
        fill, dtype = value.reshape(()).item(), value.dtype

    def fn(shape):
        return torch.full(shape.tolist(), fill, dtype=dtype, device=shape.device)

    return fn


# ---- Range -------------------------------------------------------------------------------------

_STASH_TYPES = {onnx.TensorProto.FLOAT: torch.float32, onnx.TensorProto.DOUBLE: torch.float64}
_LOW_PRECISION = (torch.float16, torch.bfloat16)


@register("Range", versions=[11, 27])
def range_(ctx):
    stash = torch.float64  # ONNX's reference computes float ranges in double, then casts
    if ctx.version >= 27:
        stash_type = int(ctx.attr("stash_type", onnx.TensorProto.FLOAT))
        if stash_type not in _STASH_TYPES:
            raise ValueError(f"Range stash_type {stash_type} is not FLOAT or DOUBLE")
        stash = _STASH_TYPES[stash_type]

    def fn(start, limit, delta):
        dtype = start.dtype
        if dtype.is_floating_point:
            compute = stash if dtype in _LOW_PRECISION else torch.float64
            s, l, d = (float(t.to(compute)) for t in (start, limit, delta))
            if d == 0:
                raise ValueError("Range delta must not be 0")
            n = max(math.ceil((l - s) / d), 0)
            out = torch.arange(n, dtype=compute, device=start.device) * d + s
            return out.to(dtype)
        s, l, d = int(start), int(limit), int(delta)
        if d == 0:
            raise ValueError("Range delta must not be 0")
        n = max(-((s - l) // d), 0)  # ceil((l - s) / d) in exact integer arithmetic
        return torch.arange(s, s + n * d, d, dtype=dtype, device=start.device)

    return fn
