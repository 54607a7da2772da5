"""Reductions (ReduceMean/Sum/Prod/Max/Min), ArgMax and TopK."""

import torch

from ..registry import register
from .common import as_int_list, normalize_axis


def _identity(x, *_):
    return x


def _reduction_plan(ctx, axes_input_since):
    """Parse axes/keepdims/noop_with_empty_axes once.

    Returns (keepdims, axes, dynamic): `axes` is a tuple of (possibly negative) axes, () meaning
    every axis, or None when the node is a no-op; `dynamic` is True when the axes come from a
    non-constant input and must be read at run time.
    """
    keepdims = bool(ctx.attr("keepdims", 1))
    if ctx.version < axes_input_since:
        # axes as an attribute; absent means all axes
        return keepdims, tuple(as_int_list(ctx.attr("axes"))), False
    noop = bool(ctx.attr("noop_with_empty_axes", 0))
    if not ctx.has_input(1):
        return keepdims, (None if noop else ()), False
    const = ctx.const(1)
    if const is None:
        return keepdims, noop, True
    axes = tuple(as_int_list(const))
    if not axes and noop:
        return keepdims, None, False
    return keepdims, axes, False


def _dims(axes, rank):
    if not axes:
        return tuple(range(rank))
    return tuple(normalize_axis(a, rank) for a in axes)


def _runtime_dims(axes_tensor, noop, rank):
    """Dims to reduce from a run-time axes tensor, or None for a no-op."""
    axes = as_int_list(axes_tensor) if axes_tensor is not None else []
    if not axes and noop:
        return None
    return _dims(axes, rank)


def _make_reduce(ctx, axes_input_since, reduce_dims):
    """Common wiring: `reduce_dims(x, dims, keepdims)` does the work for explicit dims."""
    keepdims, axes, dynamic = _reduction_plan(ctx, axes_input_since)
    if dynamic:
        noop = axes

        def fn_dynamic(x, axes_tensor=None):
            dims = _runtime_dims(axes_tensor, noop, x.dim())
            return x if dims is None else reduce_dims(x, dims, keepdims)

        return fn_dynamic
    if axes is None:
        return _identity
    if not axes:

        def fn_all(x, *_):
            return reduce_dims(x, tuple(range(x.dim())), keepdims)

        return fn_all
    if all(a >= 0 for a in axes):
        dims = tuple(axes)

        def fn_fixed(x, *_):
            return reduce_dims(x, dims, keepdims)

        return fn_fixed

    def fn(x, *_):
        return reduce_dims(x, _dims(axes, x.dim()), keepdims)

    return fn


def _reduced_shape(x, dims, keepdims):
    if keepdims:
        return [1 if i in dims else d for i, d in enumerate(x.shape)]
    return [d for i, d in enumerate(x.shape) if i not in dims]


# --- ReduceSum ----------------------------------------------------------------------------
def _sum(x, dims, keepdims):
    # dtype=x.dtype: torch would otherwise widen integer sums to int64
    return torch.sum(x, dims, keepdims, dtype=x.dtype)


@register("ReduceSum", versions=[1, 11, 13])
def reduce_sum(ctx):
    # 1/11: axes attribute (11 allows negative axes); 13: axes input + noop_with_empty_axes
    return _make_reduce(ctx, 13, _sum)


# --- ReduceProd ---------------------------------------------------------------------------
def _prod(x, dims, keepdims):
    # torch.prod takes one dim at a time; reduce with keepdim, then drop the dims if asked
    out = x
    for d in sorted(set(dims)):
        out = torch.prod(out, d, keepdim=True, dtype=x.dtype)
    if not keepdims:
        out = out.reshape(_reduced_shape(x, set(dims), False))
    return out


@register("ReduceProd", versions=[1, 11, 13, 18])
def reduce_prod(ctx):
    # 1/11/13: axes attribute (13 adds bfloat16); 18: axes input + noop_with_empty_axes
    return _make_reduce(ctx, 18, _prod)


# --- ReduceMean ---------------------------------------------------------------------------
def _mean(x, dims, keepdims):
    if x.is_floating_point():
        return torch.mean(x, dims, keepdims)
    # integer mean as the reference computes it: sum in the input type, truncating division
    n = 1
    for d in dims:
        n *= x.shape[d]
    return torch.div(torch.sum(x, dims, keepdims, dtype=x.dtype), n, rounding_mode="trunc")


@register("ReduceMean", versions=[1, 11, 13, 18])
def reduce_mean(ctx):
    # 1/11/13: axes attribute (13 adds bfloat16); 18: axes input + noop_with_empty_axes
    return _make_reduce(ctx, 18, _mean)


# --- ReduceMax / ReduceMin ----------------------------------------------------------------
def _extreme_fill(x, largest):
    """The identity element of max (largest=True) or min over an empty set, as the reference."""
    if x.dtype == torch.bool:
        return not largest
    if x.is_floating_point():
        return float("-inf") if largest else float("inf")
    info = torch.iinfo(x.dtype)
    return info.min if largest else info.max


def _max(x, dims, keepdims):
    if x.numel() == 0:
        return torch.full(_reduced_shape(x, dims, keepdims), _extreme_fill(x, True), dtype=x.dtype, device=x.device)
    return torch.amax(x, dims, keepdims)


def _min(x, dims, keepdims):
    if x.numel() == 0:
        return torch.full(_reduced_shape(x, dims, keepdims), _extreme_fill(x, False), dtype=x.dtype, device=x.device)
    return torch.amin(x, dims, keepdims)


# 1/11 (negative axes)/12 (int8, uint8)/13 (bfloat16): axes attribute; 18: axes input +
# noop_with_empty_axes; 20: bool inputs.
@register("ReduceMax", versions=[1, 11, 12, 13, 18, 20])
def reduce_max(ctx):
    return _make_reduce(ctx, 18, _max)


@register("ReduceMin", versions=[1, 11, 12, 13, 18, 20])
def reduce_min(ctx):
    return _make_reduce(ctx, 18, _min)


# --- ArgMax -------------------------------------------------------------------------------
@register("ArgMax", versions=[1, 11, 12, 13])
def arg_max(ctx):
    # 1: axis >= 0; 11: negative axis; 12: select_last_index; 13: bfloat16
    axis = int(ctx.attr("axis", 0))
    keepdims = bool(ctx.attr("keepdims", 1))
    last = bool(ctx.attr("select_last_index", 0)) if ctx.version >= 12 else False

    if not last:

        def fn(x):
            return torch.argmax(x, axis, keepdims)  # first maximal index on ties

        return fn

    def fn_last(x):
        a = normalize_axis(axis, x.dim())
        n = x.shape[a]
        return (n - 1) - torch.argmax(torch.flip(x, (a,)), a, keepdims)

    return fn_last


# --- TopK ---------------------------------------------------------------------------------
@register("TopK", versions=[1, 10, 11, 24])
def top_k(ctx):
    # 1: k attribute; 10: K as a 1-element int64 input; 11: largest/sorted attributes and
    # integer types; 24: bfloat16. Ties keep the lower index first (stable sort); the result is
    # always sorted, which sorted=0 ("any order") allows.
    axis = int(ctx.attr("axis", -1))
    largest = bool(ctx.attr("largest", 1)) if ctx.version >= 11 else True
    if ctx.version < 10:
        if ctx.attr("k") is None:
            raise ValueError("TopK-1 requires the k attribute")
        k_const = int(ctx.attr("k"))
    else:
        k_input = ctx.const(1)
        k_const = int(k_input.reshape(-1)[0]) if k_input is not None else None

    def topk(x, k):
        values, indices = torch.sort(x, dim=axis, descending=largest, stable=True)
        return values.narrow(axis, 0, k), indices.narrow(axis, 0, k)

    if k_const is not None:

        def fn_const(x, *_):
            return topk(x, k_const)

        return fn_const

    def fn(x, k):
        return topk(x, int(k.reshape(-1)[0]))

    return fn
