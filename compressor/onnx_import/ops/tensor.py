"""Tensor rearrangement and selection: Transpose, Concat, Split, Slice, Gather, GatherElements."""

from __future__ import annotations

import torch

from ..registry import register
from .common import as_int_list

# since_versions after 21 (23, 24, 25) only add element types (float4e2m1, float8e8m0, int2).
_TYPE_ONLY_NEWER = [23, 24, 25]

# Slice bounds beyond any real dimension: ONNX files use INT64_MAX / INT64_MIN for "to the end";
# torch warns when it has to truncate such values, so they are brought into this range first.
_BIG = 1 << 62


# ---- Transpose ---------------------------------------------------------------------------------


@register("Transpose", versions=[1, 13, 21, *_TYPE_ONLY_NEWER])
def transpose(ctx):
    perm = ctx.attr("perm")
    if perm is None:  # default: reverse the dimensions

        def fn_reverse(x):
            return x.permute(tuple(range(x.dim() - 1, -1, -1)))

        return fn_reverse
    perm = tuple(int(p) for p in perm)
    if sorted(perm) != list(range(len(perm))):
        raise ValueError(f"Transpose perm {list(perm)} is not a permutation")

    def fn(x):
        return x.permute(perm)

    return fn


# ---- Concat ------------------------------------------------------------------------------------


@register("Concat", versions=[4, 11, 13])
def concat(ctx):
    axis = ctx.attr("axis")
    if axis is None:
        raise ValueError("Concat needs the axis attribute")
    axis = int(axis)
    # negative axes are only documented from v11, but their meaning is unambiguous (ONNX Runtime
    # accepts them at every version), so older models using them are accepted too
    def fn(*xs):
        return torch.cat(xs, axis)  # torch counts a negative axis from the end, like ONNX

    return fn


# ---- Split -------------------------------------------------------------------------------------


def _equal_split(dim: int, n: int) -> list[int]:
    """ONNX's split into n parts: equal, or (opset 18) all ceil(dim/n) but a smaller last one."""
    if dim % n == 0:
        return [dim // n] * n
    chunk = dim // n + 1
    last = dim - chunk * (n - 1)
    if last < 0:
        raise ValueError(f"cannot split a dimension of {dim} into {n} outputs")
    return [chunk] * (n - 1) + [last]


@register("Split", versions=[2, 11, 13, 18])
def split(ctx):
    axis = int(ctx.attr("axis", 0))
    # negative axes are only documented from v11, but their meaning is unambiguous (ONNX Runtime
    # accepts them at every version), so older models using them are accepted too
    n_out = len(ctx.outputs)
    sizes = None
    dynamic = False
    if ctx.version < 13:
        attr = ctx.attr("split")
        if attr:
            sizes = [int(s) for s in attr]
    elif ctx.has_input(1):
        const = ctx.const(1)
        if const is None:
            dynamic = True
        else:
            sizes = as_int_list(const)
    if ctx.version >= 18 and ctx.attr("num_outputs") is not None:
        if sizes is not None or dynamic:
            raise ValueError("Split: give either the split input or num_outputs, not both")
        n_out = int(ctx.attr("num_outputs"))
        if n_out < 1:
            raise ValueError(f"Split num_outputs {n_out} must be positive")
    if sizes is not None:
        if any(s < 0 for s in sizes):
            raise ValueError(f"Split sizes {sizes} must be non-negative")
        if len(sizes) != len(ctx.outputs):
            raise ValueError(f"Split gives {len(sizes)} sizes for {len(ctx.outputs)} outputs")

        def fn(x, split_=None):
            return torch.split(x, sizes, axis)

        return fn
    if dynamic:

        def fn_dynamic(x, split_):
            return torch.split(x, split_.tolist(), axis)

        return fn_dynamic

    def fn_equal(x, split_=None):
        return torch.split(x, _equal_split(x.shape[axis], n_out), axis)

    return fn_equal


# ---- Slice -------------------------------------------------------------------------------------


def _slice_plan(starts, ends, axes, steps, rank):
    """(index tuple, reversed axes) that Slice applies to a tensor of rank `rank`.

    Positive steps become Python slices (whose clamping of out-of-range starts/ends is ONNX's).
    A negative step cannot be expressed in torch indexing: for those axes the plan holds
    (axis, start, end, step) and `_apply_slice` selects the same elements in increasing order
    with a positive step, then flips them.
    """
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError("Slice starts, ends, axes and steps must have the same length")
    index = [slice(None)] * rank
    backward = []
    seen = set()
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if axis < 0:
            axis += rank
        if not 0 <= axis < rank:
            raise ValueError(f"Slice axis out of range for rank {rank}")
        if axis in seen:
            raise ValueError("Slice axes repeat an axis")
        seen.add(axis)
        if step == 0:
            raise ValueError("Slice step must not be 0")
        start = max(min(start, _BIG), -_BIG)
        end = max(min(end, _BIG), -_BIG)
        if step > 0:
            index[axis] = slice(start, end, step)
        else:
            backward.append((axis, start, end, step))
    while index and index[-1] == slice(None):
        index.pop()
    return tuple(index), tuple(backward)


def _apply_slice(x, plan):
    index, backward = plan
    if not backward:
        return x[index]
    index = list(index) + [slice(None)] * (x.dim() - len(index))
    dims = x.shape
    flips = []
    for axis, start, end, step in backward:
        d = dims[axis]
        # ONNX clamping for negative steps: start into [0, d-1], end into [-1, d-1]
        if start < 0:
            start += d
        if end < 0:
            end += d
        start = min(max(start, 0), d - 1)
        end = min(max(end, -1), d - 1)
        count = max(0, (start - end + (-step) - 1) // (-step))
        if count == 0:
            index[axis] = slice(0, 0)
        else:
            first = start + step * (count - 1)  # the smallest index taken
            index[axis] = slice(first, start + 1, -step)
            flips.append(axis)
    y = x[tuple(index)]
    return y.flip(flips) if flips else y


@register("Slice", versions=[1, 10, 11, 13])
def slice_(ctx):
    if ctx.version < 10:
        starts = [int(v) for v in ctx.attr("starts", [])]
        ends = [int(v) for v in ctx.attr("ends", [])]
        axes = ctx.attr("axes")
        axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
        steps = [1] * len(starts)
        return _const_slice(starts, ends, axes, steps)

    if all(ctx.const(i) is not None or not ctx.has_input(i) for i in (1, 2, 3, 4)):
        starts = as_int_list(ctx.const(1))
        ends = as_int_list(ctx.const(2))
        axes = as_int_list(ctx.const(3)) if ctx.has_input(3) else list(range(len(starts)))
        steps = as_int_list(ctx.const(4)) if ctx.has_input(4) else [1] * len(starts)
        return _const_slice(starts, ends, axes, steps)

    def fn_dynamic(x, starts, ends, axes=None, steps=None):
        s = starts.tolist()
        plan = _slice_plan(
            s,
            ends.tolist(),
            list(range(len(s))) if axes is None else axes.tolist(),
            [1] * len(s) if steps is None else steps.tolist(),
            x.dim(),
        )
        return _apply_slice(x, plan)

    return fn_dynamic


def _const_slice(starts, ends, axes, steps):
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError("Slice starts, ends, axes and steps must have the same length")
    if any(s == 0 for s in steps):
        raise ValueError("Slice step must not be 0")
    if len(set(axes)) != len(axes):
        raise ValueError(f"Slice axes {axes} repeat an axis")
    plans: dict[int, tuple] = {}  # by input rank (negative axes depend on it)

    def fn(x, *_):
        plan = plans.get(x.dim())
        if plan is None:
            plan = plans[x.dim()] = _slice_plan(starts, ends, axes, steps, x.dim())
        return _apply_slice(x, plan)

    return fn


# ---- Gather / GatherElements -------------------------------------------------------------------


def _gather_prefix(axis: int) -> tuple:
    # advanced indexing with one index tensor at `axis`: output dims are
    # x.shape[:axis] + indices.shape + x.shape[axis+1:], and negative indices wrap as in ONNX
    return (Ellipsis,) if axis < 0 else (slice(None),) * axis


@register("Gather", versions=[1, 11, 13])
def gather(ctx):
    axis = int(ctx.attr("axis", 0))
    const = ctx.const(1)
    if const is not None and const.dim() == 0:  # a scalar index (e.g. one dim of a Shape)
        i = int(const)

        def fn_scalar(x, indices=None):
            return x.select(axis, i)

        return fn_scalar
    prefix = _gather_prefix(axis)
    suffix = (slice(None),) * (-axis - 1) if axis < 0 else ()

    def fn(x, indices):
        return x[prefix + (indices,) + suffix]

    return fn


@register("GatherElements", versions=[11, 13])
def gather_elements(ctx):
    axis = int(ctx.attr("axis", 0))
    const = ctx.const(1)
    if const is not None and not bool((const < 0).any()):

        def fn_nonnegative(x, indices):
            return torch.gather(x, axis, indices if indices.dtype == torch.int64 else indices.long())

        return fn_nonnegative

    def fn(x, indices):
        indices = indices.long()
        indices = torch.where(indices < 0, indices + x.shape[axis], indices)
        return torch.gather(x, axis, indices)

    return fn
