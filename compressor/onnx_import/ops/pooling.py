"""Pooling: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (1-D, 2-D and 3-D).

ONNX geometry, per spatial axis (k_eff = (kernel - 1) * dilation + 1):
  explicit pads:  out = floor_or_ceil((in + begin + end - k_eff) / stride) + 1, and in ceil mode
                  a last window that would start at or after `in + begin` (entirely in the end
                  padding) is dropped -- exactly torch's rule when the pads are symmetric;
  SAME_*:         out = ceil(in / stride), total pad = max(0, (out - 1) * stride + k_eff - in),
                  the odd element at the end for SAME_UPPER, at the beginning for SAME_LOWER;
  VALID:          no padding, out = floor((in - k_eff) / stride) + 1.
Windows never count positions past the padded input (the part a ceil-mode window overhangs).

torch's pooling takes only symmetric padding of at most half the kernel (and avg_pool has no
dilation), so those cases, the ones real models use, call F.*_poolNd directly. Everything else
pads explicitly and pools without padding; the average then divides by a count computed the
same way from a mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import register
from .common import int_list_attr

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _torch_pad(begin, end) -> list[int]:
    """ONNX per-axis (begin, end) -> F.pad's list, which starts from the last axis."""
    out: list[int] = []
    for b, e in zip(reversed(begin), reversed(end)):
        out += [b, e]
    return out


class _Geometry:
    """Pool attributes parsed once; `resolve` gives the pads for a given input size."""

    def __init__(self, ctx, has_ceil: bool, has_dilations: bool):
        kernel = ctx.attr("kernel_shape")
        if not kernel:
            raise ValueError("missing required attribute 'kernel_shape'")
        self.kernel = [int(k) for k in kernel]
        nd = self.nd = len(self.kernel)
        if nd not in _MAX_POOL:
            raise ValueError(f"{nd}-D pooling is not supported (1-D, 2-D and 3-D are)")
        self.strides = int_list_attr(ctx, "strides", nd, 1)
        self.dilations = int_list_attr(ctx, "dilations", nd, 1) if has_dilations else [1] * nd
        self.ceil = bool(ctx.attr("ceil_mode", 0)) if has_ceil else False
        self.auto_pad = ctx.attr("auto_pad", "NOTSET")
        if self.auto_pad not in _AUTO_PADS:
            raise ValueError(f"auto_pad {self.auto_pad!r} is not supported")
        if any(v < 1 for v in self.kernel + self.strides + self.dilations):
            raise ValueError("kernel_shape, strides and dilations must be positive")
        self.k_eff = [(k - 1) * d + 1 for k, d in zip(self.kernel, self.dilations)]
        self.static = True  # pads known without the input size
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            self.ceil = False  # ceil_mode does not apply to auto_pad (output is ceil(in/stride))
            if all(s == 1 for s in self.strides):
                self.begin, self.end = self._split([k - 1 for k in self.k_eff])
            else:
                self.static = False
        elif self.auto_pad == "VALID":
            self.ceil = False
            self.begin = self.end = [0] * nd
        else:
            pads = int_list_attr(ctx, "pads", 2 * nd, 0)
            if any(p < 0 for p in pads):
                raise ValueError(f"negative pads {pads} are not supported")
            self.begin, self.end = pads[:nd], pads[nd:]

    def _split(self, total):
        if self.auto_pad == "SAME_UPPER":
            begin = [t // 2 for t in total]
        else:
            begin = [t - t // 2 for t in total]
        return begin, [t - b for t, b in zip(total, begin)]

    def torch_native(self, allow_dilation: bool) -> bool:
        """True when F.*_poolNd computes exactly the ONNX result with its own padding."""
        return (
            self.static
            and self.begin == self.end
            and all(p <= k // 2 for p, k in zip(self.begin, self.kernel))
            and (allow_dilation or all(d == 1 for d in self.dilations))
        )

    def resolve(self, sizes):
        """(begin, end, extra): pads, and the padding a ceil-mode last window overhangs."""
        if self.static:
            begin, end = self.begin, self.end
        else:
            total = []
            for n, s, k in zip(sizes, self.strides, self.k_eff):
                total.append(max(0, ((n + s - 1) // s - 1) * s + k - n))
            begin, end = self._split(total)
        extra = []
        for n, s, k, b, e in zip(sizes, self.strides, self.k_eff, begin, end):
            span = n + b + e - k
            if self.ceil:
                out = -(-span // s) + 1
                if (out - 1) * s >= n + b:
                    out -= 1
            else:
                out = span // s + 1
            extra.append(max(0, (out - 1) * s + k - (n + b + e)))
        return begin, end, extra


# ---------------------------------------------------------------------------------------------
# MaxPool-8 (what opset 9 selects: no ceil_mode/dilations), 10 (ceil_mode, dilations),
# 11 (clarified defaults), 12 (int8/uint8), 22 (bfloat16).
# Optional Indices output: flat indices into X (n, c included), row-major over the spatial axes
# (storage_order=0) or column-major (storage_order=1).
# ---------------------------------------------------------------------------------------------
@register("MaxPool", versions=[8, 10, 11, 12, 22])
def max_pool(ctx):
    geo = _Geometry(ctx, has_ceil=ctx.version >= 10, has_dilations=ctx.version >= 10)
    storage_order = int(ctx.attr("storage_order", 0))
    if storage_order not in (0, 1):
        raise ValueError(f"storage_order {storage_order} is not supported")
    want_indices = len(ctx.outputs) > 1 and bool(ctx.outputs[1])
    pool = _MAX_POOL[geo.nd]
    k, s, d, nd = geo.kernel, geo.strides, geo.dilations, geo.nd

    if geo.torch_native(allow_dilation=True):
        p, ceil = geo.begin, geo.ceil
        if not want_indices:

            def max_pool_native(x):
                return pool(x, k, s, p, d, ceil)

            return max_pool_native

        def max_pool_native_idx(x):
            y, idx = pool(x, k, s, p, d, ceil, True)
            return y, _onnx_indices(idx, x.shape, x.shape[2:], [0] * nd, storage_order)

        return max_pool_native_idx

    def max_pool_padded(x):
        sizes = x.shape[2:]
        begin, end, extra = geo.resolve(sizes)
        xp = x
        if any(begin) or any(end) or any(extra):
            fill = float("-inf") if x.is_floating_point() else torch.iinfo(x.dtype).min
            xp = F.pad(x, _torch_pad(begin, [e + x_ for e, x_ in zip(end, extra)]), value=fill)
        if not want_indices:
            return pool(xp, k, s, 0, d)
        y, idx = pool(xp, k, s, 0, d, False, True)
        return y, _onnx_indices(idx, x.shape, xp.shape[2:], begin, storage_order)

    return max_pool_padded


def _onnx_indices(idx, x_shape, padded_sizes, begin, storage_order):
    """torch's per-plane row-major indices into the (padded) input -> ONNX flat indices into X."""
    sizes = list(x_shape[2:])
    if list(padded_sizes) != sizes or storage_order == 1:
        coords = []
        rest = idx
        for n in reversed(list(padded_sizes)):
            coords.append(rest % n)
            rest = rest // n
        coords = [c - b for c, b in zip(reversed(coords), begin)]
        order = range(len(sizes)) if storage_order == 0 else reversed(range(len(sizes)))
        idx = torch.zeros_like(idx)
        for i in order:  # Horner: the last-visited axis varies fastest
            idx = idx * sizes[i] + coords[i]
    plane = 1
    for n in sizes:
        plane *= n
    planes = x_shape[0] * x_shape[1]
    offset = torch.arange(planes, device=idx.device, dtype=idx.dtype) * plane
    return idx + offset.reshape(x_shape[0], x_shape[1], *([1] * len(sizes)))


# ---------------------------------------------------------------------------------------------
# AveragePool-7 (what opset 9 selects: count_include_pad), 10 (ceil_mode), 11 (clarified
# defaults), 19 (dilations), 22 (bfloat16).
# ---------------------------------------------------------------------------------------------
@register("AveragePool", versions=[7, 10, 11, 19, 22])
def average_pool(ctx):
    geo = _Geometry(ctx, has_ceil=ctx.version >= 10, has_dilations=ctx.version >= 19)
    count_include_pad = bool(ctx.attr("count_include_pad", 0))
    k, s, d, nd = geo.kernel, geo.strides, geo.dilations, geo.nd

    if geo.torch_native(allow_dilation=False):
        pool = _AVG_POOL[nd]
        p, ceil = geo.begin, geo.ceil

        def avg_pool_native(x):
            return pool(x, k, s, p, ceil, count_include_pad)

        return avg_pool_native

    conv = _CONV[nd]
    cache: dict = {}

    def ones_kernel(x):
        key = (x.dtype, x.device)
        kern = cache.get(key)
        if kern is None:
            kern = cache[key] = torch.ones(1, 1, *k, dtype=x.dtype, device=x.device)
        return kern

    def window_sum(t, kern):  # t: [N, C, *sizes] -> per-window sums, any dilation
        n, c = t.shape[0], t.shape[1]
        y = conv(t.reshape(n * c, 1, *t.shape[2:]), kern, None, s, 0, d)
        return y.reshape(n, c, *y.shape[2:])

    def divisor(x, sizes, begin, end, extra):
        key = (tuple(sizes), x.dtype, x.device)
        count = cache.get(key)
        if count is None:
            mask = torch.ones(1, 1, *sizes, dtype=x.dtype, device=x.device)
            if count_include_pad:
                mask = F.pad(mask, _torch_pad(begin, end), value=1.0)
                mask = F.pad(mask, _torch_pad([0] * nd, extra), value=0.0)
            else:
                mask = F.pad(mask, _torch_pad(begin, [e + x_ for e, x_ in zip(end, extra)]), value=0.0)
            count = cache[key] = window_sum(mask, ones_kernel(x)).clamp_min(1)
        return count

    def avg_pool_general(x):
        sizes = list(x.shape[2:])
        begin, end, extra = geo.resolve(sizes)
        xp = F.pad(x, _torch_pad(begin, [e + x_ for e, x_ in zip(end, extra)]))
        return window_sum(xp, ones_kernel(x)) / divisor(x, sizes, begin, end, extra)

    return avg_pool_general


# ---------------------------------------------------------------------------------------------
# GlobalAveragePool-1 / GlobalMaxPool-1; 22 adds bfloat16.
# ---------------------------------------------------------------------------------------------
@register("GlobalAveragePool", versions=[1, 22])
def global_average_pool(ctx):
    def fn(x):
        return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)

    return fn


@register("GlobalMaxPool", versions=[1, 22])
def global_max_pool(ctx):
    def fn(x):
        return x.amax(dim=tuple(range(2, x.dim())), keepdim=True)

    return fn
