"""Small helpers shared by the operator implementations."""

from __future__ import annotations

import torch


def normalize_axis(axis: int, rank: int) -> int:
    """ONNX allows negative axes counted from the end."""
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def as_int_list(value) -> list[int]:
    """An ONNX integer tensor (or list) as a Python list of ints."""
    if value is None:
        return []
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    return [int(v) for v in value]


def int_list_attr(ctx, name: str, length: int, default: int) -> list[int]:
    """An INTS attribute of a known length (e.g. strides for each spatial axis); `default`
    repeated when the attribute is absent."""
    value = ctx.attr(name)
    if not value:
        return [default] * length
    value = [int(v) for v in value]
    if len(value) != length:
        raise ValueError(f"attribute {name} has {len(value)} values, expected {length}")
    return value
