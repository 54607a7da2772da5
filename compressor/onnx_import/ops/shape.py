"""Shape queries and shape-changing operators: Shape, Size, Reshape, Flatten, Squeeze,
Unsqueeze, Expand, Tile.

In real graphs these mostly run on small int64 "shape" tensors (dynamic-batch exports compute
Reshape targets through Shape -> Gather -> Concat chains), so every function stays lean and
everything that depends only on attributes or constant inputs is worked out in the builder.
Shape tensors are created on the device of the tensor they describe, so they combine with the
module's buffers wherever the module lives.
"""

from __future__ import annotations

import math

import torch

from ..registry import register
from .common import as_int_list, normalize_axis

# since_versions after 21 (23, 24, 25) only add element types (float4e2m1, float8e8m0, int2).
_TYPE_ONLY_NEWER = [23, 24, 25]


def _int_list(value) -> list[int]:
    """A run-time integer tensor (or None) as a list of Python ints."""
    if value is None:
        return []
    return value.reshape(-1).tolist()


# ---- Shape / Size ------------------------------------------------------------------------------


# torch's own shape-to-tensor (what its tracer records for x.shape): an int64 CPU tensor, several
# times faster than torch.tensor(x.shape); used for CPU inputs when this torch has it.
_shape_as_tensor = getattr(torch, "_shape_as_tensor", None)


def _full_shape(x: torch.Tensor) -> torch.Tensor:
    if x.is_cpu and _shape_as_tensor is not None:
        return _shape_as_tensor(x)
    return torch.tensor(x.shape, dtype=torch.int64, device=x.device)


@register("Shape", versions=[1, 13, 15, 19, 21, *_TYPE_ONLY_NEWER])
def shape(ctx):
    start = int(ctx.attr("start", 0)) if ctx.version >= 15 else 0
    end = ctx.attr("end") if ctx.version >= 15 else None
    if start == 0 and end is None:
        return _full_shape
    # Python slicing of the shape tuple clamps exactly as ONNX does (negative: + rank, then clip).
    part = slice(start, None if end is None else int(end))

    def fn_part(x):
        return torch.tensor(x.shape[part], dtype=torch.int64, device=x.device)

    return fn_part


@register("Size", versions=[1, 13, 19, 21, *_TYPE_ONLY_NEWER])
def size(ctx):
    def fn(x):
        return torch.tensor(x.numel(), dtype=torch.int64, device=x.device)

    return fn


# ---- Reshape -----------------------------------------------------------------------------------


def _reshape_target(target: list[int], allowzero: bool):
    """(target, positions of 0 to copy from the input) for an ONNX Reshape shape."""
    if target.count(-1) > 1:
        raise ValueError(f"Reshape shape {target} has more than one -1")
    if any(d < -1 for d in target):
        raise ValueError(f"Reshape shape {target} has a negative dimension other than -1")
    if allowzero:
        if 0 in target and -1 in target:
            raise ValueError(f"Reshape shape {target} combines 0 and -1 with allowzero=1")
        return target, []
    return target, [i for i, d in enumerate(target) if d == 0]


@register("Reshape", versions=[5, 13, 14, 19, 21, *_TYPE_ONLY_NEWER])
def reshape(ctx):
    allowzero = bool(ctx.attr("allowzero", 0)) if ctx.version >= 14 else False
    const = ctx.const(1)
    if const is not None:
        target, copy = _reshape_target(as_int_list(const), allowzero)
        target = tuple(target)
        if not copy:

            def fn(x, shape=None):
                return x.reshape(target)

            return fn

        def fn_copy(x, shape=None):
            t = list(target)
            dims = x.shape
            for i in copy:
                t[i] = dims[i]
            return x.reshape(t)

        return fn_copy

    if allowzero:

        def fn_dynamic_allowzero(x, shape):
            return x.reshape(shape.tolist())

        return fn_dynamic_allowzero

    def fn_dynamic(x, shape):
        t = shape.tolist()
        if 0 in t:
            dims = x.shape
            t = [dims[i] if d == 0 else d for i, d in enumerate(t)]
        return x.reshape(t)

    return fn_dynamic


# ---- Flatten -----------------------------------------------------------------------------------


@register("Flatten", versions=[9, 11, 13, 21, *_TYPE_ONLY_NEWER])
def flatten(ctx):
    axis = int(ctx.attr("axis", 1))
    # negative axes are only documented from v11, but their meaning is unambiguous (ONNX Runtime
    # accepts them at every version), so older models using them are accepted too
    if axis == 1:  # the usual case (classifier heads); same result as below for rank >= 2

        def fn_one(x):
            return x.flatten(1) if x.dim() >= 2 else x.reshape(x.shape[0], 1)

        return fn_one

    def fn(x):
        dims = x.shape
        a = axis + len(dims) if axis < 0 else axis
        if not 0 <= a <= len(dims):
            raise ValueError(f"Flatten axis {axis} out of range for rank {len(dims)}")
        return x.reshape(math.prod(dims[:a]), math.prod(dims[a:]))

    return fn


# ---- Squeeze / Unsqueeze -----------------------------------------------------------------------


def _axes(ctx, input_index: int) -> tuple[list[int] | None, bool]:
    """(axes, known): axes from the attribute (before v13) or a constant input (v13+).

    known is False when the axes input exists but is only available at run time.
    """
    if ctx.version < 13:
        axes = ctx.attr("axes")
        return (None if axes is None else [int(a) for a in axes]), True
    if not ctx.has_input(input_index):
        return None, True
    const = ctx.const(input_index)
    if const is None:
        return None, False
    return as_int_list(const), True


@register("Squeeze", versions=[1, 11, 13, 21, *_TYPE_ONLY_NEWER])
def squeeze(ctx):
    axes, known = _axes(ctx, 1)
    if not known:

        def fn_dynamic(x, axes=None):
            return x.squeeze(tuple(_int_list(axes))) if axes is not None and axes.numel() else x.squeeze()

        return fn_dynamic
    if axes is None or not axes:  # no axes: remove every 1-dim

        def fn_all(x, axes=None):
            return x.squeeze()

        return fn_all
    dims = tuple(axes)  # torch.squeeze accepts negative dims, counted like ONNX's

    def fn(x, axes=None):
        return x.squeeze(dims)

    return fn


def _unsqueeze(x: torch.Tensor, axes: list[int]) -> torch.Tensor:
    rank = x.dim() + len(axes)
    for a in sorted(normalize_axis(a, rank) for a in axes):
        x = x.unsqueeze(a)
    return x


@register("Unsqueeze", versions=[1, 11, 13, 21, *_TYPE_ONLY_NEWER])
def unsqueeze(ctx):
    axes, known = _axes(ctx, 1)
    if not known:

        def fn_dynamic(x, axes):
            return _unsqueeze(x, _int_list(axes))

        return fn_dynamic
    if not axes:
        raise ValueError("Unsqueeze needs axes")
    if len(set(axes)) != len(axes):
        raise ValueError(f"Unsqueeze axes {axes} repeat an axis")
    if len(axes) == 1:
        axis = axes[0]  # torch counts a negative dim against the output rank, like ONNX

        def fn_one(x, axes=None):
            return x.unsqueeze(axis)

        return fn_one
    if all(a >= 0 for a in axes):
        ordered = sorted(axes)

        def fn_sorted(x, axes=None):
            for a in ordered:
                x = x.unsqueeze(a)
            return x

        return fn_sorted
    fixed = list(axes)

    def fn(x, axes=None):
        return _unsqueeze(x, fixed)

    return fn


# ---- Expand / Tile -----------------------------------------------------------------------------


@register("Expand", versions=[8, 13])
def expand(ctx):
    const = ctx.const(1)
    if const is not None:
        target = tuple(as_int_list(const))

        def fn(x, shape=None):
            # bidirectional broadcast: the target may have fewer dims, or 1 where x has more
            return x.expand(torch.broadcast_shapes(x.shape, target))

        return fn

    def fn_dynamic(x, shape):
        return x.expand(torch.broadcast_shapes(x.shape, tuple(shape.tolist())))

    return fn_dynamic


@register("Tile", versions=[6, 13])
def tile(ctx):
    const = ctx.const(1)
    if const is not None:
        repeats = tuple(as_int_list(const))
        if any(r < 0 for r in repeats):
            raise ValueError(f"Tile repeats {list(repeats)} must be non-negative")

        def fn(x, repeats_=None):
            return x.repeat(repeats)

        return fn

    def fn_dynamic(x, repeats_):
        return x.repeat(repeats_.tolist())

    return fn_dynamic
