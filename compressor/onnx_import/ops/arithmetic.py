"""Elementwise arithmetic: binary ops with multidirectional broadcasting, unary math, variadic
Min/Max/Sum/Mean, and Clip.

ONNX requires both inputs of Add/Sub/Mul/Div (and all inputs of Min/Max/Sum/Mean) to have the
same element type, so torch's type promotion never changes the result type and the torch
functions are used directly.
"""

import torch

from ..registry import register

# Add/Sub/Mul/Div: opset 9 selects version 7 (numpy-style broadcasting, no `broadcast` attribute);
# 13 adds bfloat16, 14 adds the 8/16-bit integer types. Same semantics throughout.
_BINARY_VERSIONS = [7, 13, 14]


@register("Add", versions=_BINARY_VERSIONS)
def add(ctx):
    return torch.add


@register("Sub", versions=_BINARY_VERSIONS)
def sub(ctx):
    return torch.sub


@register("Mul", versions=_BINARY_VERSIONS)
def mul(ctx):
    return torch.mul


def _int_div(a, b):
    # ONNX integer division truncates toward zero (C semantics)
    return torch.div(a, b, rounding_mode="trunc")


def _div(a, b):
    if a.is_floating_point():
        return torch.div(a, b)
    return torch.div(a, b, rounding_mode="trunc")


@register("Div", versions=_BINARY_VERSIONS)
def div(ctx):
    # Both inputs share one type: a constant input tells which branch applies.
    for i in (0, 1):
        c = ctx.const(i)
        if c is not None:
            return torch.div if c.is_floating_point() else _int_div
    return _div


@register("Pow", versions=[7, 12, 13, 15])
def power(ctx):
    # 7: same-typed float inputs; 12: base float/int32/int64 with an exponent of any numeric type,
    # the result having the base's type; 13 adds bfloat16 base, 15 bfloat16 exponent.
    exponent = ctx.const(1)
    if exponent is not None and exponent.numel() == 1 and exponent.dim() == 0:
        e = exponent.item()
        if e == 2:
            return _square  # the common Pow(x, 2); keeps x's type like ONNX

    def fn(x, y):
        z = torch.pow(x, y)
        return z if z.dtype == x.dtype else z.to(x.dtype)

    return fn


def _square(x, y):
    return torch.square(x)


def _unary(name, fn, versions):
    @register(name, versions=versions)
    def builder(ctx):
        return fn

    return builder


# opset 9 selects version 6 of each; 13 adds bfloat16.
_unary("Sqrt", torch.sqrt, [6, 13])
_unary("Exp", torch.exp, [6, 13])
_unary("Log", torch.log, [6, 13])
_unary("Abs", torch.abs, [6, 13])
_unary("Neg", torch.neg, [6, 13])
_unary("Reciprocal", torch.reciprocal, [6, 13])


def _identity(x, *_):
    return x


def _variadic(ctx, pair):
    """Fold a binary torch op over a variadic input list (with broadcasting)."""
    n = len(ctx.inputs)
    if n == 1:
        return _identity
    if n == 2:
        return pair

    def fn(*xs):
        out = pair(xs[0], xs[1])
        for x in xs[2:]:
            out = pair(out, x)
        return out

    return fn


# Min/Max: 8 (multidirectional broadcast, float), 12 (integer types), 13 (bfloat16).
# torch.minimum/maximum propagate NaN, as the ONNX reference does.
@register("Min", versions=[8, 12, 13])
def minimum(ctx):
    return _variadic(ctx, torch.minimum)


@register("Max", versions=[8, 12, 13])
def maximum(ctx):
    return _variadic(ctx, torch.maximum)


@register("Sum", versions=[8, 13])
def sum_(ctx):
    return _variadic(ctx, torch.add)


@register("Mean", versions=[8, 13])
def mean(ctx):
    n = len(ctx.inputs)
    if n == 1:
        return _identity
    total = _variadic(ctx, torch.add)

    def fn(*xs):
        return total(*xs) / n

    return fn


@register("Clip", versions=[6, 11, 12, 13])
def clip(ctx):
    if ctx.version < 11:
        # min/max attributes; when absent there is no bound (the defaults are the float limits)
        lo = ctx.attr("min")
        hi = ctx.attr("max")
        lo = None if lo is None else float(lo)
        hi = None if hi is None else float(hi)
        if lo is None and hi is None:
            return _identity

        def fn_attr(x):
            return torch.clamp(x, lo, hi)

        return fn_attr

    # 11: min/max as optional inputs (float); 12: integer types; 13: bfloat16.
    has_lo, has_hi = ctx.has_input(1), ctx.has_input(2)
    if not has_lo and not has_hi:
        return _identity
    lo_c, hi_c = ctx.const(1), ctx.const(2)
    if (not has_lo or lo_c is not None) and (not has_hi or hi_c is not None):
        lo = lo_c.reshape(()).item() if lo_c is not None else None
        hi = hi_c.reshape(()).item() if hi_c is not None else None

        # min > max gives max everywhere, in ONNX (numpy.clip) and torch.clamp alike
        def fn_const(x, *_):
            return torch.clamp(x, lo, hi)

        return fn_const

    def fn(x, lo=None, hi=None):
        return torch.clamp(x, lo, hi)

    return fn
