"""Normalisation: BatchNormalization, InstanceNormalization, LayerNormalization, LRN.

BatchNormalization in inference mode always normalises with the stored statistics, whatever
the torch module's train()/eval() state: the stored mean/var are inputs, never updated in place.
A node that the ONNX graph itself puts in training mode (training_mode=1, or BN-9 declaring the
extra outputs) computes what ONNX specifies: batch statistics for Y, and the updated running
statistics as extra outputs (returned, not written anywhere).
"""

import torch
import torch.nn.functional as F

from ..registry import register
from ..tensors import ONNX_TO_TORCH
from .common import normalize_axis


def _declared(ctx, index: int) -> bool:
    outs = ctx.outputs
    return index < len(outs) and bool(outs[index])


# ---------------------------------------------------------------------------------------------
# BatchNormalization
# ---------------------------------------------------------------------------------------------
# 9 (what opsets 9..13 select): no `spatial`; training mode is signalled by the optional outputs
#   (mean, var, saved_mean, saved_var).
# 14: `training_mode` attribute; outputs running_mean, running_var in training mode only.
# 15: scale/B and mean/var may have element types different from X.
@register("BatchNormalization", versions=[9, 14, 15])
def batch_normalization(ctx):
    eps = float(ctx.attr("epsilon", 1e-5))
    momentum = float(ctx.attr("momentum", 0.9))
    if ctx.version >= 14:
        training = bool(ctx.attr("training_mode", 0))
        num_outputs = 3 if training else 1
    else:
        num_outputs = max((i + 1 for i in range(len(ctx.outputs)) if ctx.outputs[i]), default=1)
        training = num_outputs > 1
    if not training:
        if any(_declared(ctx, i) for i in range(1, len(ctx.outputs))):
            raise ValueError("extra outputs are only defined in training mode")

        def infer(x, scale, bias, mean, var):
            if scale.dtype != x.dtype or mean.dtype != x.dtype:  # BN-15: e.g. fp16 X, fp32 stats
                scale, bias, mean, var = (t.to(x.dtype) for t in (scale, bias, mean, var))
            if mean.requires_grad or var.requires_grad:  # statistics computed in-graph: keep their gradient
                shape = (1, -1) + (1,) * (x.dim() - 2)
                inv = torch.rsqrt(var + eps) * scale
                return (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)
            return F.batch_norm(x, mean, var, scale, bias, False, 0.0, eps)

        return infer

    def train(x, scale, bias, mean, var):
        dims = [0, *range(2, x.dim())]
        batch_var, batch_mean = torch.var_mean(x, dim=dims, unbiased=False)
        w, b = (scale, bias) if scale.dtype == x.dtype else (scale.to(x.dtype), bias.to(x.dtype))
        y = F.batch_norm(x, None, None, w, b, True, 0.0, eps)  # batch statistics, no state
        running_mean = mean * momentum + batch_mean.to(mean.dtype) * (1.0 - momentum)
        running_var = var * momentum + batch_var.to(var.dtype) * (1.0 - momentum)
        if num_outputs <= 3:
            return (y, running_mean, running_var)[:num_outputs]
        # BN-9's saved_mean / saved_var: the batch statistics (as in ONNX's reference runtime)
        return (y, running_mean, running_var, batch_mean, batch_var)[:num_outputs]

    return train


# ---------------------------------------------------------------------------------------------
# InstanceNormalization-6; 22 adds bfloat16.
# ---------------------------------------------------------------------------------------------
@register("InstanceNormalization", versions=[6, 22])
def instance_normalization(ctx):
    eps = float(ctx.attr("epsilon", 1e-5))

    def fn(x, scale, bias):
        return F.instance_norm(x, weight=scale, bias=bias, eps=eps)

    return fn


# ---------------------------------------------------------------------------------------------
# LayerNormalization-17: normalise over axes [axis, rank); Scale and B broadcast to X.
# Optional outputs Mean and InvStdDev, of type `stash_type`, with shape d[0..axis-1], 1, ..., 1.
# ---------------------------------------------------------------------------------------------
@register("LayerNormalization", versions=[17])
def layer_normalization(ctx):
    axis = int(ctx.attr("axis", -1))
    eps = float(ctx.attr("epsilon", 1e-5))
    stash_type = int(ctx.attr("stash_type", 1))
    stash_dtype = ONNX_TO_TORCH.get(stash_type)
    if stash_dtype is None or not stash_dtype.is_floating_point:
        raise ValueError(f"stash_type {stash_type} is not a floating-point type")
    want_stats = _declared(ctx, 1) or _declared(ctx, 2)

    if not want_stats:

        def fn(x, scale, bias=None):
            a = axis + x.dim() if axis < 0 else axis
            shape = x.shape[a:]
            if scale.shape == shape and (bias is None or bias.shape == shape):
                return F.layer_norm(x, shape, scale, bias, eps)
            y = F.layer_norm(x, shape, None, None, eps) * scale
            return y if bias is None else y + bias

        return fn

    def fn_stats(x, scale, bias=None):
        a = normalize_axis(axis, x.dim())
        dims = tuple(range(a, x.dim()))
        xs = x.to(torch.promote_types(x.dtype, stash_dtype))  # at least stash precision, never less
        var, mean = torch.var_mean(xs, dim=dims, unbiased=False, keepdim=True)
        inv_std = torch.rsqrt(var + eps)
        y = ((xs - mean) * inv_std).to(x.dtype) * scale
        if bias is not None:
            y = y + bias
        return y, mean.to(stash_dtype), inv_std.to(stash_dtype)

    return fn_stats


# ---------------------------------------------------------------------------------------------
# LRN-1; 13 adds bfloat16.
#   Y = X / (bias + alpha / size * square_sum) ^ beta, the sum running over channels
#   [c - floor((size-1)/2), c + ceil((size-1)/2)].
# ---------------------------------------------------------------------------------------------
@register("LRN", versions=[1, 13])
def lrn(ctx):
    size = ctx.attr("size")
    if size is None or int(size) < 1:
        raise ValueError("LRN needs a positive 'size' attribute")
    size = int(size)
    alpha = float(ctx.attr("alpha", 1e-4))
    beta = float(ctx.attr("beta", 0.75))
    bias = float(ctx.attr("bias", 1.0))
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2

    def fn(x):
        n, c = x.shape[0], x.shape[1]
        sq = (x * x).reshape(n, 1, c, -1)  # channels as the pooled axis, spatial flattened
        sq = F.pad(sq, (0, 0, before, after))
        mean_sq = F.avg_pool2d(sq, (size, 1), stride=1).reshape(x.shape)  # square_sum / size
        return x / (mean_sq * alpha + bias).pow(beta)

    return fn
