"""Activation functions."""

import torch
import torch.nn.functional as F

from ..registry import register
from .common import normalize_axis


@register("Relu", versions=[6, 13, 14])
def relu(ctx):
    return torch.relu


@register("LeakyRelu", versions=[6, 16])
def leaky_relu(ctx):
    alpha = float(ctx.attr("alpha", 0.01))

    def fn(x):
        return F.leaky_relu(x, alpha)

    return fn


@register("PRelu", versions=[9, 16])
def prelu(ctx):
    # slope broadcasts unidirectionally to X. A constant per-channel slope ([C], [C,1,...,1] with
    # X of rank len(slope.shape)+1, or a single value) runs through F.prelu; anything else (and
    # integer inputs) through the general formula.
    slope = ctx.const(1)
    channel_rank = None  # the rank of X for which slope is per-channel (axis 1)
    if slope is not None and slope.is_floating_point():
        shape = list(slope.shape)
        if slope.numel() == 1:
            channel_rank = -1  # any rank
        elif shape and all(d == 1 for d in shape[1:]):
            channel_rank = len(shape) + 1

    def general(x, s):
        return torch.where(x < 0, x * s, x)

    if channel_rank is None:
        return general

    def fn(x, s):
        if x.is_floating_point() and (channel_rank == -1 or x.dim() == channel_rank):
            return F.prelu(x, s.reshape(-1))
        return general(x, s)

    return fn


@register("Sigmoid", versions=[6, 13])
def sigmoid(ctx):
    return torch.sigmoid


@register("Tanh", versions=[6, 13])
def tanh(ctx):
    return torch.tanh


@register("HardSigmoid", versions=[6, 22])  # 22: adds bfloat16 only
def hard_sigmoid(ctx):
    alpha = float(ctx.attr("alpha", 0.2))
    beta = float(ctx.attr("beta", 0.5))

    def fn(x):
        return torch.clamp(x * alpha + beta, 0.0, 1.0)

    return fn


@register("HardSwish", versions=[14, 22])  # 22: adds bfloat16 only
def hard_swish(ctx):
    # ONNX: x * max(0, min(1, x/6 + 0.5)), exactly torch's hardswish
    return F.hardswish


@register("Mish", versions=[18, 22])  # 22: adds bfloat16 only
def mish(ctx):
    return F.mish


@register("Elu", versions=[6, 22])  # 22: adds bfloat16 only
def elu(ctx):
    alpha = float(ctx.attr("alpha", 1.0))

    def fn(x):
        return F.elu(x, alpha)

    return fn


_SELU_ALPHA = 1.67326319217681884765625
_SELU_GAMMA = 1.05070102214813232421875


@register("Selu", versions=[6, 22])  # 22: adds bfloat16 only
def selu(ctx):
    alpha = float(ctx.attr("alpha", _SELU_ALPHA))
    gamma = float(ctx.attr("gamma", _SELU_GAMMA))
    if alpha == _SELU_ALPHA and gamma == _SELU_GAMMA:
        return F.selu

    def fn(x):
        return F.elu(x, alpha) * gamma

    return fn


@register("Softplus", versions=[1, 22])  # 22: adds bfloat16 only
def softplus(ctx):
    return F.softplus


def _softmax_builder(ctx, op):
    if ctx.version >= 13:
        axis = int(ctx.attr("axis", -1))

        def fn(x):
            return op(x, axis)

        return fn

    # versions 1 and 11: X is coerced to 2-D [prod(shape[:axis]), prod(shape[axis:])] and the
    # normalisation runs over the second dimension, i.e. over all trailing dims together.
    axis = int(ctx.attr("axis", 1))

    def fn_2d(x):
        rank = x.dim()
        a = normalize_axis(axis, rank) if rank else 0
        if a >= rank - 1:
            return op(x, -1) if rank else op(x.reshape(1), -1).reshape(())
        return op(x.reshape(x.shape[:a].numel(), -1), 1).reshape(x.shape)

    return fn_2d


@register("Softmax", versions=[1, 11, 13])
def softmax(ctx):
    return _softmax_builder(ctx, torch.softmax)


@register("LogSoftmax", versions=[1, 11, 13])
def log_softmax(ctx):
    return _softmax_builder(ctx, torch.log_softmax)


@register("Erf", versions=[9, 13])
def erf(ctx):
    return torch.erf


@register("Gelu", versions=[20])
def gelu(ctx):
    approximate = ctx.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"Gelu approximate={approximate!r} is not supported")

    def fn(x):
        return F.gelu(x, approximate=approximate)

    return fn
