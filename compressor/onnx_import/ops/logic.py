"""Comparisons, boolean logic and Where (multidirectional broadcasting; bool outputs)."""

import torch

from ..registry import register


@register("Where", versions=[9, 16])  # 16: adds bfloat16
def where(ctx):
    return torch.where


# Equal: 7 (bool/int32/int64), 11 (all numeric types), 13 (bfloat16), 19 (string: unsupported,
# torch has no string tensors, so such an input never reaches this function).
@register("Equal", versions=[7, 11, 13, 19])
def equal(ctx):
    return torch.eq


# Greater/Less: 9 (all numeric types), 13 (bfloat16).
@register("Greater", versions=[9, 13])
def greater(ctx):
    return torch.gt


@register("Less", versions=[9, 13])
def less(ctx):
    return torch.lt


@register("Not", versions=[1])
def not_(ctx):
    return torch.logical_not


@register("And", versions=[7])
def and_(ctx):
    return torch.logical_and
