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
