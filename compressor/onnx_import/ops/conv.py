"""Convolutions: Conv, ConvTranspose (1-D, 2-D and 3-D).

Padding is resolved in the builder whenever it does not depend on the input size, so the
common case (symmetric pads) is one call to F.convNd with `padding=`. Asymmetric pads go
through F.pad first. auto_pad SAME_UPPER / SAME_LOWER with a stride > 1 depends on the input
size and is computed at run time with a few integer operations.
"""

from __future__ import annotations

import torch.nn.functional as F

from ..registry import register
from .common import int_list_attr

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _spatial_rank(ctx, kernel_shape) -> int | None:
    """Number of spatial axes, when attributes or the constant weight tell it."""
    if kernel_shape:
        return len(kernel_shape)
    for name in ("strides", "dilations", "output_padding", "output_shape"):
        value = ctx.attr(name)
        if value:
            return len(value)
    pads = ctx.attr("pads")
    if pads:
        return len(pads) // 2
    w = ctx.const(1)
    if w is not None:
        return w.dim() - 2
    return None


def _torch_pad(begin, end) -> list[int]:
    """ONNX per-axis (begin, end) -> F.pad's list, which starts from the last axis."""
    out: list[int] = []
    for b, e in zip(reversed(begin), reversed(end)):
        out += [b, e]
    return out


def _same_pads(total, upper: bool):
    """Split total padding per axis; the odd element goes to the end for SAME_UPPER."""
    begin = [t // 2 if upper else t - t // 2 for t in total]
    return begin, [t - b for t, b in zip(total, begin)]


def _common(ctx):
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad not in _AUTO_PADS:
        raise ValueError(f"auto_pad {auto_pad!r} is not supported")
    group = int(ctx.attr("group", 1))
    if group < 1:
        raise ValueError(f"group must be positive, got {group}")
    kernel_shape = ctx.attr("kernel_shape")
    kernel_shape = [int(k) for k in kernel_shape] if kernel_shape else None
    if kernel_shape is None and ctx.const(1) is not None:
        kernel_shape = list(ctx.const(1).shape[2:])
    nd = _spatial_rank(ctx, kernel_shape)
    if nd is not None and nd not in _CONV:
        raise ValueError(f"{nd}-D convolution is not supported (1-D, 2-D and 3-D are)")
    return auto_pad, group, kernel_shape, nd


# ---------------------------------------------------------------------------------------------
# Conv-1 (what opsets 9/10 select), 11 (same semantics, clarified SAME_* and defaults),
# 22 (adds bfloat16).
# ---------------------------------------------------------------------------------------------
@register("Conv", versions=[1, 11, 22])
def conv(ctx):
    auto_pad, group, kernel_shape, nd = _common(ctx)
    if nd is None:
        return _per_rank(lambda rank: _conv_fn(ctx, rank, auto_pad, group, kernel_shape))
    return _conv_fn(ctx, nd, auto_pad, group, kernel_shape)


def _per_rank(make):
    """Nothing tells the rank before run time (every attribute absent, weight not constant):
    build the function on first use for each input rank."""
    built: dict = {}

    def dispatch(x, *rest):
        fn = built.get(x.dim())
        if fn is None:
            if x.dim() - 2 not in _CONV:
                raise ValueError(f"{x.dim() - 2}-D convolution is not supported (1-D, 2-D and 3-D are)")
            fn = built[x.dim()] = make(x.dim() - 2)
        return fn(x, *rest)

    return dispatch


def _conv_fn(ctx, nd, auto_pad, group, kernel_shape):
    op = _CONV[nd]
    strides = int_list_attr(ctx, "strides", nd, 1)
    dilations = int_list_attr(ctx, "dilations", nd, 1)

    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        upper = auto_pad == "SAME_UPPER"
        if all(s == 1 for s in strides) and kernel_shape is not None:
            # output size = input size: total padding (k-1)*d, independent of the input
            begin, end = _same_pads([(k - 1) * d for k, d in zip(kernel_shape, dilations)], upper)
        else:

            def conv_same(x, w, b=None):
                total = []
                for i in range(nd):
                    size, s = x.shape[2 + i], strides[i]
                    k_eff = (w.shape[2 + i] - 1) * dilations[i] + 1
                    total.append(max(0, ((size + s - 1) // s - 1) * s + k_eff - size))
                begin, end = _same_pads(total, upper)
                if begin == end:
                    return op(x, w, b, strides, begin, dilations, group)
                return op(F.pad(x, _torch_pad(begin, end)), w, b, strides, 0, dilations, group)

            return conv_same
    elif auto_pad == "VALID":
        begin = end = [0] * nd
    else:
        pads = int_list_attr(ctx, "pads", 2 * nd, 0)
        begin, end = pads[:nd], pads[nd:]
        if any(p < 0 for p in pads):
            raise ValueError(f"negative pads {pads} are not supported")

    if begin == end:  # the common case: one fused call

        def conv_sym(x, w, b=None):
            return op(x, w, b, strides, begin, dilations, group)

        return conv_sym

    pad = _torch_pad(begin, end)

    def conv_asym(x, w, b=None):
        return op(F.pad(x, pad), w, b, strides, 0, dilations, group)

    return conv_asym


# ---------------------------------------------------------------------------------------------
# ConvTranspose-1, 11, 22 (22 adds bfloat16).
#
#   output[i] = stride[i] * (input[i] - 1) + output_padding[i] + (kernel[i] - 1) * dilation[i] + 1
#               - pads[begin_i] - pads[end_i]
#
# With output_shape (or SAME_*, which asks for output = input * stride) the pads are derived:
#   total[i] = stride[i] * (input[i] - 1) + output_padding[i] + (kernel[i] - 1) * dilation[i] + 1
#              - output_shape[i]
#   SAME_UPPER: begin = total // 2 (extra at the end); otherwise: begin = total - total // 2.
# ConvTranspose-1's text states the split the other way round, contradicting its own
# description of SAME_UPPER ("extra padding at the end"); 11 corrected the text. Runtimes use
# the corrected rule for every version, and so do we.
# A negative total (kernel smaller than the stride under SAME_*) is kept, as the spec and ONNX's
# reference do: the output is still input * stride (onnxruntime clamps it to 0 instead).
# ---------------------------------------------------------------------------------------------
@register("ConvTranspose", versions=[1, 11, 22])
def conv_transpose(ctx):
    auto_pad, group, kernel_shape, nd = _common(ctx)
    if nd is None:
        return _per_rank(lambda rank: _conv_transpose_fn(ctx, rank, auto_pad, group, kernel_shape))
    return _conv_transpose_fn(ctx, nd, auto_pad, group, kernel_shape)


def _conv_transpose_fn(ctx, nd, auto_pad, group, kernel_shape):
    op = _CONV_T[nd]
    strides = int_list_attr(ctx, "strides", nd, 1)
    dilations = int_list_attr(ctx, "dilations", nd, 1)
    out_pad = int_list_attr(ctx, "output_padding", nd, 0)
    output_shape = ctx.attr("output_shape")
    if output_shape:
        output_shape = [int(v) for v in output_shape]
        if len(output_shape) == nd + 2:  # some exporters include N and C
            output_shape = output_shape[2:]
        if len(output_shape) != nd:
            raise ValueError(f"output_shape {output_shape} does not match {nd} spatial axes")
    upper = auto_pad == "SAME_UPPER"
    torch_ok_out_pad = all(0 <= p < max(s, d) for p, s, d in zip(out_pad, strides, dilations))

    def apply(x, w, b, begin, end):
        if begin == end and torch_ok_out_pad and min(begin) >= 0:
            return op(x, w, b, strides, begin, out_pad, group, dilations)
        # general: full transposed convolution, then crop (negative F.pad) or extend with zeros
        y = op(x, w, None, strides, 0, 0, group, dilations)
        y = F.pad(y, _torch_pad([-p for p in begin], [q - p for p, q in zip(end, out_pad)]))
        if b is not None:
            y = y + b.reshape(1, -1, *([1] * nd))
        return y

    if output_shape:

        def convt_output_shape(x, w, b=None):
            total = [
                strides[i] * (x.shape[2 + i] - 1) + out_pad[i] + (w.shape[2 + i] - 1) * dilations[i] + 1
                - output_shape[i]
                for i in range(nd)
            ]
            begin, end = _same_pads(total, upper)
            return apply(x, w, b, begin, end)

        return convt_output_shape

    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        # output = input * stride: total = output_padding + (k-1)*d + 1 - stride, whatever the input
        if kernel_shape is None:

            def convt_same(x, w, b=None):
                total = [out_pad[i] + (w.shape[2 + i] - 1) * dilations[i] + 1 - strides[i] for i in range(nd)]
                begin, end = _same_pads(total, upper)
                return apply(x, w, b, begin, end)

            return convt_same
        total = [p + (k - 1) * d + 1 - s for p, k, d, s in zip(out_pad, kernel_shape, dilations, strides)]
        begin, end = _same_pads(total, upper)
    elif auto_pad == "VALID":
        begin = end = [0] * nd
    else:
        pads = int_list_attr(ctx, "pads", 2 * nd, 0)
        begin, end = pads[:nd], pads[nd:]

    if begin == end and torch_ok_out_pad and min(begin) >= 0:

        def convt(x, w, b=None):
            return op(x, w, b, strides, begin, out_pad, group, dilations)

        return convt

    def convt_general(x, w, b=None):
        return apply(x, w, b, begin, end)

    return convt_general
