"""Pad (opset 2, 11, 13, 18, 19, 21, 23, 24, 25).

ONNX `pads` are [x1_begin, x2_begin, ..., x1_end, x2_end, ...] over all axes (or over `axes`,
from Pad-18), and may be negative: a negative pad removes elements. For the non-constant modes
the removal happens first and the padding is computed from the cropped tensor (as onnxruntime
does).

* constant: one `F.pad` call (torch's constant padding supports any rank and negative pads).
* edge / reflect / wrap: `F.pad` (replicate / reflect / circular) when the padded axes are the
  trailing ones torch supports, else one `index_select` per padded axis with precomputed source
  indices (any rank, any dtype, differentiable).

Versions: 2 (pads/value attributes), 11 (pads/constant_value inputs), 13 (bfloat16, string,
bool), 18 (optional `axes` input), 19 (`wrap` mode), 21/23/24/25 (new element types only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import register
from .common import as_int_list, normalize_axis

_TORCH_MODE = {"edge": "replicate", "reflect": "reflect", "wrap": "circular"}


def _full_pads(pads: list[int], axes: list[int] | None, rank: int) -> list[tuple[int, int]]:
    """Per-dimension (begin, end) pairs for a tensor of `rank` dimensions."""
    if axes is None:
        if len(pads) != 2 * rank:
            raise ValueError(f"Pad: {len(pads)} pads for a rank-{rank} input (expected {2 * rank})")
        axes = list(range(rank))
    else:
        if len(pads) != 2 * len(axes):
            raise ValueError(f"Pad: {len(pads)} pads for {len(axes)} axes")
        axes = [normalize_axis(a, rank) for a in axes]
    full = [(0, 0)] * rank
    n = len(axes)
    for i, a in enumerate(axes):
        full[a] = (pads[i], pads[n + i])
    return full


def _torch_pad_tuple(full: list[tuple[int, int]]) -> tuple[int, ...]:
    """F.pad's argument: pairs from the last dimension backwards, up to the first padded one."""
    padded = [d for d, p in enumerate(full) if p != (0, 0)]
    if not padded:
        return ()
    out: list[int] = []
    for d in range(len(full) - 1, padded[0] - 1, -1):
        out.extend(full[d])
    return tuple(out)


def _source_index(n: int, begin: int, end: int, mode: str) -> torch.Tensor:
    """Indices into an axis of length n producing the padded axis (crop first, then pad)."""
    start = -min(begin, 0)
    m = n + min(begin, 0) + min(end, 0)  # length after cropping
    b, e = max(begin, 0), max(end, 0)
    if m <= 0:
        if b + e > 0:
            raise ValueError(f"Pad: cannot {mode}-pad an empty axis")
        return torch.zeros(0, dtype=torch.int64)
    p = torch.arange(-b, m + e, dtype=torch.int64)
    if mode == "edge":
        q = p.clamp(0, m - 1)
    elif mode == "wrap":
        q = torch.remainder(p, m)
    else:  # reflect: a triangle wave of period 2(m - 1), like numpy's repeated reflection
        if m == 1:
            q = torch.zeros_like(p)
        else:
            period = 2 * (m - 1)
            r = torch.remainder(p, period)
            q = torch.where(r < m, r, period - r)
    return q + start


def _make_padder(mode: str):
    """fn(x, full_pads, value) for one mode, with per-shape caches for the index paths."""
    if mode == "constant":

        def pad_constant(x, full, value):
            tup = _torch_pad_tuple(full)
            if not tup:
                return x
            return F.pad(x, tup, mode="constant", value=value)

        return pad_constant

    torch_mode = _TORCH_MODE[mode]
    index_cache: dict = {}

    def pad_other(x, full, value):
        shape = x.shape
        rank = len(shape)
        padded = [d for d in range(rank) if full[d] != (0, 0)]
        if not padded:
            return x
        k = rank - padded[0]
        if (
            k <= 3
            and rank >= k
            and x.is_floating_point()
            and all(full[d][0] >= 0 and full[d][1] >= 0 for d in padded)
            and (
                mode == "edge"
                or (mode == "reflect" and all(max(full[d]) < shape[d] for d in padded))
                or (mode == "wrap" and all(max(full[d]) <= shape[d] for d in padded))
            )
            and all(shape[d] > 0 for d in padded)
        ):
            tup = _torch_pad_tuple(full)
            if rank in (k + 1, k + 2):
                return F.pad(x, tup, mode=torch_mode)
            lead = shape[:rank - k]
            y = F.pad(x.reshape((-1,) + tuple(shape[rank - k:])), tup, mode=torch_mode)
            return y.reshape(tuple(lead) + tuple(y.shape[1:]))
        for d in padded:
            key = (shape[d], full[d], x.device)
            idx = index_cache.get(key)
            if idx is None:
                idx = _source_index(shape[d], full[d][0], full[d][1], mode).to(x.device)
                if len(index_cache) < 64:
                    index_cache[key] = idx
            x = x.index_select(d, idx)
        return x

    return pad_other


def _scalar(value: torch.Tensor | None):
    if value is None or value.numel() == 0:
        return 0
    v = value.reshape(-1)[0]
    if v.dtype == torch.bool:
        return bool(v)
    if v.is_floating_point() or v.is_complex():
        return float(v)
    return int(v)


@register("Pad", versions=[2, 11, 13, 18, 19, 21, 23, 24, 25])
def pad(ctx):
    mode = ctx.attr("mode", "constant")
    modes = ("constant", "reflect", "edge", "wrap") if ctx.version >= 19 else ("constant", "reflect", "edge")
    if mode not in modes:
        raise ValueError(f"Pad-{ctx.version}: unsupported mode {mode!r}")
    padder = _make_padder(mode)

    if ctx.version < 11:
        pads = as_int_list(ctx.attr("pads"))
        value = float(ctx.attr("value", 0.0))
        full_by_rank: dict[int, list] = {}

        def fn_v2(x):
            full = full_by_rank.get(x.dim())
            if full is None:
                full = full_by_rank[x.dim()] = _full_pads(pads, None, x.dim())
            return padder(x, full, value)

        return fn_v2

    const_pads = ctx.const(1)
    pads_c = as_int_list(const_pads) if const_pads is not None else None
    has_value = ctx.has_input(2)
    const_value = ctx.const(2)
    value_c = _scalar(const_value) if (const_value is not None or not has_value) else None
    has_axes = ctx.version >= 18 and ctx.has_input(3)
    const_axes = ctx.const(3) if has_axes else None
    axes_c = as_int_list(const_axes) if const_axes is not None else None
    axes_static = not has_axes or axes_c is not None

    if pads_c is not None and axes_static and value_c is not None and mode == "constant":
        # The common case (constant pads and value): precompute the F.pad argument per rank.
        tuples: dict[int, tuple] = {}

        def fn_const(x, *_):
            tup = tuples.get(x.dim())
            if tup is None:
                tup = tuples[x.dim()] = _torch_pad_tuple(_full_pads(pads_c, axes_c, x.dim()))
            if not tup:
                return x
            return F.pad(x, tup, mode="constant", value=value_c)

        return fn_const

    full_cache: dict = {}

    def fn(x, pads_t=None, value_t=None, axes_t=None):
        rank = x.dim()
        if pads_c is not None and axes_static:
            full = full_cache.get(rank)
            if full is None:
                full = full_cache[rank] = _full_pads(pads_c, axes_c, rank)
        else:
            p = pads_c if pads_c is not None else as_int_list(pads_t)
            if has_axes:
                a = axes_c if axes_c is not None else as_int_list(axes_t)
            else:
                a = None
            full = _full_pads(p, a, rank)
        value = value_c if value_c is not None else (_scalar(value_t) if mode == "constant" else 0)
        return padder(x, full, value)

    return fn
