"""Depth <-> space rearrangements: DepthToSpace, SpaceToDepth.

Both are pure permutations of a 4-D NCHW tensor. torch's pixel_shuffle / pixel_unshuffle
implement the CRD ("column-row-depth") ordering; DCR ("depth-column-row", ONNX's default) is
written as reshape -> permute -> reshape.
"""

import torch.nn.functional as F

from ..registry import register


def _blocksize(ctx) -> int:
    blocksize = ctx.attr("blocksize")
    if blocksize is None:
        raise ValueError("missing required attribute 'blocksize'")
    blocksize = int(blocksize)
    if blocksize < 1:
        raise ValueError(f"blocksize must be positive, got {blocksize}")
    return blocksize


def _mode(ctx, has_mode: bool) -> str:
    mode = ctx.attr("mode", "DCR") if has_mode else "DCR"
    if mode not in ("DCR", "CRD"):
        raise ValueError(f"mode {mode!r} is not supported (expected DCR or CRD)")
    return mode


# DepthToSpace-1 has no mode (always DCR); 11 adds mode; 13 adds bfloat16; 28 only turns it into
# a context-dependent function (same semantics).
@register("DepthToSpace", versions=[1, 11, 13, 28])
def depth_to_space(ctx):
    r = _blocksize(ctx)
    mode = _mode(ctx, ctx.version >= 11)

    if mode == "CRD":
        return lambda x: F.pixel_shuffle(x, r)

    def fn(x):
        b, c, h, w = x.shape
        y = x.reshape(b, r, r, c // (r * r), h, w).permute(0, 3, 4, 1, 5, 2)
        return y.reshape(b, c // (r * r), h * r, w * r)

    return fn


# SpaceToDepth-1/13 always order blocks depth-column-row (DCR); 28 adds the mode attribute.
@register("SpaceToDepth", versions=[1, 13, 28])
def space_to_depth(ctx):
    r = _blocksize(ctx)
    mode = _mode(ctx, ctx.version >= 28)

    if mode == "CRD":
        return lambda x: F.pixel_unshuffle(x, r)

    def fn(x):
        b, c, h, w = x.shape
        y = x.reshape(b, c, h // r, r, w // r, r).permute(0, 3, 5, 1, 2, 4)
        return y.reshape(b, c * r * r, h // r, w // r)

    return fn
