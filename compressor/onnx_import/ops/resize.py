"""Resize (opset 10, 11, 13, 18, 19) and Upsample (opset 7, 9).

Everything that depends only on the input shape and the (usually constant) scales / sizes /
roi is planned once per input shape and cached:

* the output size and per-axis scale, following the ONNX reference implementation:
  ``floor(in * scale)`` from scales, ``sizes`` (with keep_aspect_ratio_policy) otherwise;
* for every resized axis, the source indices and weights given by ONNX's formulas
  (coordinate_transformation_mode, nearest_mode, cubic_coeff_a, exclude_outside, antialias,
  tf_crop_and_resize with extrapolation_value);
* whether torch's own kernel computes the same thing, in which case the node is one call to
  it: ``nearest`` / ``nearest-exact`` when its source indices equal ONNX's (checked on the
  indices, with torch's float32 arithmetic), ``linear`` / ``bilinear`` / ``trilinear`` /
  ``bicubic`` for half_pixel, pytorch_half_pixel and align_corners where the coordinate
  formulas coincide, and torch's antialiased bilinear / bicubic kernels where they coincide
  with ONNX's antialias filter.

The general path is separable, one step per resized axis: an ``index_select`` for nearest; for
linear / cubic, a weighted sum of the K gathered neighbours (K = 2, 4, more with antialias),
or on the CPU for short axes a product with the dense (out, in) weight matrix. It handles any
axis (N and C included), any rank and any dtype (integers are interpolated in float64, then
rounded and saturated), and is differentiable with respect to the input.

Semantics follow onnx.reference where the specification is loose: scales are used as given
(not recomputed from the output size), align_corners and tf_crop_and_resize divide by
``scale * length_original - 1`` (the fractional output length), and the output length from
scales ignores roi (as onnxruntime and ONNX shape inference do). pytorch_half_pixel maps an
output of length 1 to coordinate 0 as the specification says (onnx.reference uses -0.5 and
tests the fractional length). Resize-10 and Upsample use asymmetric coordinates; their
nearest mode rounds down when upsampling and up when downsampling an axis (onnxruntime's
behaviour for these versions, which have no nearest_mode attribute).
"""

from __future__ import annotations

import math

import torch

from ..registry import register
from .common import as_int_list, normalize_axis

_MODES_V10 = ("nearest", "linear")
_MODES = ("nearest", "linear", "cubic")
_COORD_MODES = (
    "half_pixel",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nn",
    "tf_crop_and_resize",
)
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
_POLICIES = ("stretch", "not_larger", "not_smaller")
_CACHE_LIMIT = 32

# torch's resampling kernels, called the way F.interpolate calls them (with the output size
# and the per-axis scale factors both given, so torch uses ONNX's scale in its coordinates)
_nn = torch._C._nn
_NEAREST_OPS = {1: _nn.upsample_nearest1d, 2: _nn.upsample_nearest2d, 3: _nn.upsample_nearest3d}
_NEAREST_EXACT_OPS = {
    1: _nn._upsample_nearest_exact1d,
    2: _nn._upsample_nearest_exact2d,
    3: _nn._upsample_nearest_exact3d,
}
_LINEAR_OPS = {1: _nn.upsample_linear1d, 2: _nn.upsample_bilinear2d, 3: _nn.upsample_trilinear3d}


class _Config:
    """The node's attributes, validated."""

    def __init__(self, mode, coord, nearest, cubic_a, exclude_outside, extrapolation, antialias, policy, axes):
        self.mode = mode
        self.coord = coord
        self.nearest = nearest  # one of _NEAREST_MODES, or "simple" (Resize-10 / Upsample)
        self.cubic_a = cubic_a
        self.exclude_outside = exclude_outside
        self.extrapolation = extrapolation
        self.antialias = antialias
        self.policy = policy
        self.axes = axes  # None: all axes


# ---------------------------------------------------------------------------------------------
# Output size and per-axis scale


def _output_plan(cfg, shape, scales, sizes, roi):
    """[(axis, n, m, scale, roi_start, roi_end)] for every axis, and the output shape."""
    rank = len(shape)
    axes = list(range(rank)) if cfg.axes is None else [normalize_axis(a, rank) for a in cfg.axes]
    scale_all = [1.0] * rank
    out_all = list(shape)
    if scales:
        if sizes:
            raise ValueError("Resize: only one of 'scales' and 'sizes' may be given")
        if len(scales) != len(axes):
            raise ValueError(f"Resize: {len(scales)} scales for {len(axes)} axes")
        for a, s in zip(axes, scales):
            if not s > 0:
                raise ValueError(f"Resize: scales must be positive, got {s}")
            scale_all[a] = float(s)
            out_all[a] = int(math.floor(shape[a] * float(s)))
    elif sizes:
        if len(sizes) != len(axes):
            raise ValueError(f"Resize: {len(sizes)} sizes for {len(axes)} axes")
        ratios = [(m / shape[a]) if shape[a] else 1.0 for a, m in zip(axes, sizes)]
        if cfg.policy == "stretch":
            for a, m, r in zip(axes, sizes, ratios):
                scale_all[a] = r
                out_all[a] = int(m)
        else:
            common = min(ratios) if cfg.policy == "not_larger" else max(ratios)
            for a in axes:
                scale_all[a] = common
                out_all[a] = int(common * shape[a] + 0.5)
    else:
        raise ValueError("Resize: one of 'scales' and 'sizes' must be given")
    roi_all = [(0.0, 1.0)] * rank
    if cfg.coord == "tf_crop_and_resize" and roi:
        if len(roi) != 2 * len(axes):
            raise ValueError(f"Resize: roi has {len(roi)} values for {len(axes)} axes")
        k = len(axes)
        for i, a in enumerate(axes):
            roi_all[a] = (float(roi[i]), float(roi[k + i]))
    plan = []
    for a in range(rank):
        n, m, s = shape[a], out_all[a], scale_all[a]
        if m == n and s == 1.0 and roi_all[a] == (0.0, 1.0):
            continue  # identity along this axis
        if n == 0 and m > 0:
            raise ValueError("Resize: cannot resize an empty axis to a non-empty one")
        plan.append((a, n, m, s, roi_all[a][0], roi_all[a][1]))
    return plan, out_all


# ---------------------------------------------------------------------------------------------
# Per-axis source coordinates, indices and weights (ONNX formulas, float64)


def _source_coords(cfg, n, m, s, r0, r1):
    y = torch.arange(m, dtype=torch.float64)
    width = s * n  # the (possibly fractional) output length
    coord = cfg.coord
    if coord == "half_pixel":
        return (y + 0.5) / s - 0.5
    if coord == "half_pixel_symmetric":
        # offset + (y + 0.5) / s - 0.5 with offset = n / 2 * (1 - m / width), rearranged so
        # that exact results (integers, ties for nearest) stay exact in floating point
        return (n - 1) / 2 + (2 * y + 1 - m) / (2 * s)
    if coord == "pytorch_half_pixel":
        return (y + 0.5) / s - 0.5 if m > 1 else torch.zeros(m, dtype=torch.float64)
    if coord == "align_corners":
        if width == 1:
            return torch.zeros(m, dtype=torch.float64)
        return y * (n - 1) / (width - 1)
    if coord == "asymmetric":
        return y / s
    if coord == "tf_half_pixel_for_nn":
        return (y + 0.5) / s
    # tf_crop_and_resize
    if width == 1:
        x = torch.full((m,), (r1 - r0) * (n - 1) / 2, dtype=torch.float64)
    else:
        x = y * (r1 - r0) * (n - 1) / (width - 1)
    return x + r0 * (n - 1)


def _cubic_kernel(d, a):
    d = d.abs()
    d2, d3 = d * d, d * d * d
    near = (a + 2) * d3 - (a + 3) * d2 + 1
    far = a * d3 - 5 * a * d2 + 8 * a * d - 4 * a
    return torch.where(d <= 1, near, torch.where(d < 2, far, torch.zeros_like(d)))


def _axis_weights(cfg, n, m, s, r0, r1):
    """(idx [m, K] int64 in [0, n), weights [m, K] float64 or None for nearest, extrapolated [m] or None)."""
    x = _source_coords(cfg, n, m, s, r0, r1)
    x0 = torch.floor(x)
    ratio = x - x0
    base = x0.to(torch.int64)
    weights = None
    if cfg.mode == "nearest":
        nm = cfg.nearest
        if nm == "simple":
            nm = "ceil" if s < 1 else "floor"
        if nm == "round_prefer_floor":
            idx = base + (ratio > 0.5)
        elif nm == "round_prefer_ceil":
            idx = base + (ratio >= 0.5)
        elif nm == "ceil":
            idx = base + (ratio > 0)
        else:
            idx = base
        idx = idx[:, None]
    else:
        aa_scale = min(s, 1.0) if cfg.antialias else 1.0
        if cfg.mode == "linear":
            if aa_scale < 1.0:
                start = math.floor(-1 / aa_scale) + 1
                offsets = torch.arange(start, 1 - start + 1, dtype=torch.int64)  # 2 - 2 * start taps
                d = (offsets.to(torch.float64)[None, :] - ratio[:, None]) * aa_scale
                weights = (1 - d.abs()).clamp(0, 1)
            else:
                offsets = torch.tensor([0, 1], dtype=torch.int64)
                weights = torch.stack([1 - ratio, ratio], dim=1)
        else:  # cubic
            a = cfg.cubic_a
            if aa_scale < 1.0:
                start = math.floor(-2 / aa_scale) + 1
                offsets = torch.arange(start, 1 - start + 1, dtype=torch.int64)
                d = (offsets.to(torch.float64)[None, :] - ratio[:, None]) * aa_scale
                weights = _cubic_kernel(d, a)
            else:
                offsets = torch.tensor([-1, 0, 1, 2], dtype=torch.int64)
                r = ratio
                weights = torch.stack(
                    [
                        ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                        ((a + 2) * r - (a + 3)) * r * r + 1,
                        ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
                        ((a * (2 - r) - 5 * a) * (2 - r) + 8 * a) * (2 - r) - 4 * a,
                    ],
                    dim=1,
                )
        if aa_scale < 1.0:
            total = weights.sum(dim=1, keepdim=True)
            weights = weights / torch.where(total == 0, torch.ones_like(total), total)
        idx = base[:, None] + offsets[None, :]
        if cfg.exclude_outside:
            weights = torch.where((idx < 0) | (idx >= n), torch.zeros_like(weights), weights)
            total = weights.sum(dim=1, keepdim=True)
            weights = weights / torch.where(total == 0, torch.ones_like(total), total)
    idx = idx.clamp(0, max(n - 1, 0))
    extrapolated = None
    if cfg.coord == "tf_crop_and_resize":
        out_of_range = (x < 0) | (x > n - 1)
        if bool(out_of_range.any()):
            extrapolated = out_of_range
    return idx, weights, extrapolated


# ---------------------------------------------------------------------------------------------
# Fast paths: torch's kernels, where they compute what ONNX specifies


def _torch_nearest_index(n, m, s, exact):
    """The source indices torch's nearest / nearest-exact kernels use (float32 arithmetic)."""
    inv = torch.tensor(1.0 / s, dtype=torch.float32)
    y = torch.arange(m, dtype=torch.float32)
    if exact:
        y = y + 0.5
    return torch.floor(y * inv).to(torch.int64).clamp(max=max(n - 1, 0))


def _nearest_fast_op(cfg, plan):
    """aten nearest / nearest-exact ops when their indices equal ONNX's on every resized axis."""
    onnx_indices = []
    for a, n, m, s, r0, r1 in plan:
        idx, _, extrapolated = _axis_weights(cfg, n, m, s, r0, r1)
        if extrapolated is not None:
            return None
        onnx_indices.append(idx[:, 0])
    for exact, ops in ((False, _NEAREST_OPS), (True, _NEAREST_EXACT_OPS)):
        ok = True
        for (a, n, m, s, r0, r1), idx in zip(plan, onnx_indices):
            if not torch.equal(idx, _torch_nearest_index(n, m, s, exact)):
                ok = False
            elif not exact and m in (n, 2 * n):
                # torch's CPU kernel special-cases these sizes (identity, y >> 1)
                ok = torch.equal(idx, torch.arange(m) // (m // n))
            if not ok:
                break
        if ok:
            return ops
    return None


def _fast_path(cfg, x, plan, out_shape):
    """A callable running torch's kernel, or None when the general path is needed."""
    rank = x.dim()
    nsp = rank - 2
    if nsp not in (1, 2, 3) or not x.is_floating_point():
        return None
    if any(a < 2 for a, *_ in plan) or not plan:
        return None
    size = [int(v) for v in out_shape[2:]]
    scales = [1.0] * nsp
    for a, n, m, s, r0, r1 in plan:
        scales[a - 2] = s
    if any(n == 0 or m == 0 for _, n, m, *_ in plan):
        return None

    if cfg.mode == "nearest":
        ops = _nearest_fast_op(cfg, plan)
        if ops is None:
            return None
        op = ops[nsp]
        return lambda t: op(t, size, *scales)

    coord = cfg.coord
    if coord == "pytorch_half_pixel" and all(m > 1 for _, n, m, *_ in plan):
        coord = "half_pixel"
    if coord == "half_pixel":
        align = False
    elif coord == "align_corners" and all(abs(s * n - m) <= 1e-6 * max(m, 1) for _, n, m, s, *_ in plan):
        align = True  # torch divides by (m - 1); ONNX by (s * n - 1): the same here
    else:
        return None
    downscaled = cfg.antialias and any(s < 1 for _a, _n, _m, s, _r0, _r1 in plan)
    scale_args = [None] * nsp if align else scales

    if downscaled and any(v <= 1 for v in size):
        return None  # torch's antialiased kernels are wrong for an output width of 1

    if cfg.mode == "linear":
        if downscaled:
            # torch's antialiased kernel leaves out taps beyond the border and renormalizes,
            # which is ONNX's exclude_outside=1
            if not cfg.exclude_outside or nsp != 2 or align or x.dtype not in (torch.float32, torch.float64):
                return None
            return lambda t: _nn._upsample_bilinear2d_aa(t, size, False, *scale_args)
        op = _LINEAR_OPS[nsp]
        return lambda t: op(t, size, align, *scale_args)

    # cubic
    if nsp != 2:
        return None
    if downscaled:
        if (
            not cfg.exclude_outside
            or cfg.cubic_a != -0.5
            or align
            or x.dtype not in (torch.float32, torch.float64)
        ):
            return None
        return lambda t: _nn._upsample_bicubic2d_aa(t, size, False, *scale_args)
    if cfg.cubic_a != -0.75 or cfg.exclude_outside:
        return None
    return lambda t: _nn.upsample_bicubic2d(t, size, align, *scale_args)


# ---------------------------------------------------------------------------------------------
# General path


# On the CPU, short axes are interpolated with a dense (m, n) matrix product, much faster
# there than gathering neighbours. (Not on GPUs, where TF32 matmuls could round the result.)
_DENSE_MAX_IN = 192
_DENSE_MAX_ELEMENTS = 1 << 20


def _dense_step(a, rank, n, m, idx, w):
    """Interpolation along axis a as a matrix product with the (m, n) weight matrix."""
    mat = torch.zeros(m, n, dtype=w.dtype, device=w.device)
    rows = torch.arange(m, device=w.device)[:, None].expand_as(idx)
    mat.index_put_((rows, idx), w, accumulate=True)
    if a == rank - 1:
        mat_t = mat.t().contiguous()
        return lambda t: torch.matmul(t, mat_t)
    if a == rank - 2:
        return lambda t: torch.matmul(mat, t)

    def step(t):
        shape = t.shape
        y = torch.matmul(mat, t.reshape(math.prod(shape[:a]), n, math.prod(shape[a + 1:])))
        return y.reshape(tuple(shape[:a]) + (m,) + tuple(shape[a + 1:]))

    return step


def _gather_step(a, rank, m, idx, w):
    """Interpolation along axis a as a weighted sum of K gathered neighbours."""
    tail = (1,) * (rank - a - 1)
    taps = [(idx[:, k].contiguous(), w[:, k].reshape((m,) + tail)) for k in range(idx.shape[1])]
    if len(taps) == 2:
        (i0, _), (i1, w1) = taps  # the two weights sum to 1 (always, after renormalization)

        def lerp(t):
            return torch.lerp(t.index_select(a, i0), t.index_select(a, i1), w1)

        return lerp

    def step(t):
        out = t.index_select(a, taps[0][0]) * taps[0][1]
        for i, wk in taps[1:]:
            out = out + t.index_select(a, i) * wk
        return out

    return step


def _general_path(cfg, x, plan):
    dtype = x.dtype
    nearest = cfg.mode == "nearest"
    if not nearest and dtype == torch.bool:
        raise ValueError("Resize: linear/cubic interpolation of a bool tensor")
    if dtype in (torch.float16, torch.bfloat16):
        compute = torch.float32
    elif dtype.is_floating_point or dtype.is_complex:
        compute = dtype
    else:  # integers: interpolate in float64, then round and saturate (as onnx.reference)
        compute = torch.float64
    device = x.device
    rank = x.dim()
    steps = []
    for a, n, m, s, r0, r1 in plan:
        idx, w, extrapolated = _axis_weights(cfg, n, m, s, r0, r1)
        idx = idx.to(device)
        if w is None:
            i0 = idx[:, 0].contiguous()
            step = lambda t, a=a, i0=i0: t.index_select(a, i0)  # noqa: E731
        else:
            w = w.to(device=device, dtype=compute)
            if device.type == "cpu" and n <= _DENSE_MAX_IN and m * n <= _DENSE_MAX_ELEMENTS:
                step = _dense_step(a, rank, n, m, idx, w)
            else:
                step = _gather_step(a, rank, m, idx, w)
        if extrapolated is not None:
            mask = extrapolated.to(device).reshape((m,) + (1,) * (rank - a - 1))
            step = _with_extrapolation(step, mask, cfg.extrapolation)
        steps.append(step)
    is_float = dtype.is_floating_point or dtype.is_complex
    info = None if is_float or dtype == torch.bool else torch.iinfo(dtype)

    def run(t):
        if not nearest and t.dtype != compute:
            t = t.to(compute)
        for step in steps:
            t = step(t)
        if t.dtype != dtype:
            if info is not None:
                t = t.round().clamp(info.min, info.max)
            t = t.to(dtype)
        return t

    return run


def _with_extrapolation(step, mask, value):
    def run(t):
        y = step(t)
        return torch.where(mask, torch.tensor(value, dtype=y.dtype, device=y.device), y)

    return run


# ---------------------------------------------------------------------------------------------
# Builders


def _make_fn(cfg, scales_c, sizes_c, roi_c, scales_pos, sizes_pos, roi_pos):
    """fn(*inputs). scales_c / sizes_c / roi_c: the constant values as tuples (() when absent
    or empty), or None when the input is not constant and is read at run time from inputs[pos]."""
    cache: dict = {}
    roi_used = cfg.coord == "tf_crop_and_resize"
    if not roi_used:
        roi_c = ()

    def plan_for(x, scales, sizes, roi):
        plan, out_shape = _output_plan(cfg, list(x.shape), scales, sizes, roi)
        if not plan:
            return _identity
        return _fast_path(cfg, x, plan, out_shape) or _general_path(cfg, x, plan)

    if scales_c is not None and sizes_c is not None and roi_c is not None:

        def fn_const(x, *_):
            run = _cached(cache, (x.shape, x.dtype, x.device), lambda: plan_for(x, scales_c, sizes_c, roi_c))
            return run(x)

        return fn_const

    def read(inputs, pos, const, floats):
        if const is not None:
            return const
        t = inputs[pos] if pos < len(inputs) else None
        if t is None or t.numel() == 0:
            return ()
        values = t.reshape(-1).tolist()
        return tuple(float(v) for v in values) if floats else tuple(int(v) for v in values)

    def fn(*inputs):
        x = inputs[0]
        scales = read(inputs, scales_pos, scales_c, True)
        sizes = read(inputs, sizes_pos, sizes_c, False)
        roi = read(inputs, roi_pos, roi_c, True)
        run = _cached(cache, (x.shape, x.dtype, x.device, scales, sizes, roi), lambda: plan_for(x, scales, sizes, roi))
        return run(x)

    return fn


def _cached(cache: dict, key, build):
    """The resize plan for `key`, built once; the cache is bounded (shapes can vary per call)."""
    run = cache.get(key)
    if run is None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        run = cache[key] = build()
    return run


def _identity(t):
    return t


def _as_const(values):
    return None if values is None else tuple(values)


@register("Resize", versions=[10, 11, 13, 18, 19])
def resize(ctx):
    v = ctx.version
    mode = ctx.attr("mode", "nearest")
    if mode not in (_MODES_V10 if v < 11 else _MODES):
        raise ValueError(f"Resize-{v}: unsupported mode {mode!r}")
    if v < 11:
        cfg = _Config(mode, "asymmetric", "simple", -0.75, 0, 0.0, 0, "stretch", None)
        scales_c = ctx.const(1)
        scales_c = _as_const(None if scales_c is None else [float(s) for s in scales_c.reshape(-1).tolist()])
        return _make_fn(cfg, scales_c, (), None, 1, None, None)

    coord = ctx.attr("coordinate_transformation_mode", "half_pixel")
    coord_modes = _COORD_MODES + (("half_pixel_symmetric",) if v >= 19 else ())
    if coord not in coord_modes:
        raise ValueError(f"Resize-{v}: unsupported coordinate_transformation_mode {coord!r}")
    nearest = ctx.attr("nearest_mode", "round_prefer_floor")
    if nearest not in _NEAREST_MODES:
        raise ValueError(f"Resize-{v}: unsupported nearest_mode {nearest!r}")
    antialias = int(ctx.attr("antialias", 0)) if v >= 18 else 0
    policy = ctx.attr("keep_aspect_ratio_policy", "stretch") if v >= 18 else "stretch"
    if policy not in _POLICIES:
        raise ValueError(f"Resize-{v}: unsupported keep_aspect_ratio_policy {policy!r}")
    axes = as_int_list(ctx.attr("axes")) if v >= 18 and ctx.attr("axes") is not None else None
    if axes is not None and len(set(axes)) != len(axes):
        raise ValueError(f"Resize-{v}: repeated axes {axes}")
    cfg = _Config(
        mode,
        coord,
        nearest,
        float(ctx.attr("cubic_coeff_a", -0.75)),
        int(ctx.attr("exclude_outside", 0)),
        float(ctx.attr("extrapolation_value", 0.0)),
        antialias,
        policy,
        axes,
    )

    def const_or_none(i, floats):
        if not ctx.has_input(i):
            return ()
        value = ctx.const(i)
        if value is None:
            return None
        if value.numel() == 0:
            return ()
        return tuple(float(x) for x in value.reshape(-1).tolist()) if floats else tuple(as_int_list(value))

    scales_c = const_or_none(2, True)
    sizes_c = const_or_none(3, False)
    roi_c = const_or_none(1, True) if coord == "tf_crop_and_resize" else ()
    if scales_c and sizes_c:
        raise ValueError(f"Resize-{v}: both scales and sizes are given")
    if scales_c == () and sizes_c == ():
        raise ValueError(f"Resize-{v}: neither scales nor sizes is given")
    return _make_fn(cfg, scales_c, sizes_c, roi_c, 2, 3, 1)


@register("Upsample", versions=[7, 9])
def upsample(ctx):
    mode = ctx.attr("mode", "nearest")
    if mode not in _MODES_V10:
        raise ValueError(f"Upsample-{ctx.version}: unsupported mode {mode!r}")
    cfg = _Config(mode, "asymmetric", "simple", -0.75, 0, 0.0, 0, "stretch", None)
    if ctx.version < 9:
        scales = ctx.attr("scales")
        if not scales:
            raise ValueError("Upsample-7: the scales attribute is required")
        return _make_fn(cfg, tuple(float(s) for s in scales), (), None, None, None, None)
    scales_c = ctx.const(1)
    scales_c = _as_const(None if scales_c is None else [float(s) for s in scales_c.reshape(-1).tolist()])
    return _make_fn(cfg, scales_c, (), None, 1, None, None)
