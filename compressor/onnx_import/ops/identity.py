"""Identity and Dropout (inference semantics)."""

import torch

from ..registry import register


def _identity(x):
    return x


# 1; 13 bfloat16; 14 sequences; 16 optionals; 19 float8; 21 int4/uint4; 23 float4e2m1;
# 24 float8e8m0; 25 int2/uint2. The value passes through unchanged whatever its type.
@register("Identity", versions=[1, 13, 14, 16, 19, 21, 23, 24, 25])
def identity(ctx):
    return _identity


def _scalar(value) -> float:
    return float(value.reshape(-1)[0])


@register("Dropout", versions=[7, 10, 12, 13, 22])
def dropout(ctx):
    """Dropout as ONNX runs it outside training: output = data, mask all true.

    7: ratio attribute, mask of data's type; 10: bool mask; 12: ratio and training_mode as
    optional inputs, seed attribute; 13: bfloat16; 22: float8 types.

    From 12 a training_mode input may switch the node to training behaviour. This importer runs
    inference semantics, so a constant training_mode=true with a non-zero ratio is refused. A
    training_mode computed at run time (a graph input) is honoured: when it is true and the ratio
    is non-zero the node drops elements with torch's RNG (random, like any dropout; the `seed`
    attribute cannot reproduce another runtime's draws).
    """
    mask_wanted = len(ctx.outputs) > 1 and bool(ctx.outputs[1])
    bool_mask = ctx.version >= 10

    def inference(x, *_):
        if not mask_wanted:
            return x
        mask = torch.ones_like(x, dtype=torch.bool if bool_mask else x.dtype)
        return x, mask

    if ctx.version < 12 or not ctx.has_input(2):
        return inference

    training = ctx.const(2)
    ratio_const = ctx.const(1)
    if training is not None:
        if not bool(training.reshape(-1)[0]):
            return inference
        # training with ratio 0 keeps everything: the same as inference
        ratio = 0.5 if not ctx.has_input(1) else (None if ratio_const is None else _scalar(ratio_const))
        if ratio != 0.0:
            raise ValueError("Dropout with training_mode=true is not supported (the importer runs inference semantics)")
        return inference

    def fn(x, ratio=None, training_mode=None):
        if training_mode is None or not bool(training_mode):
            return inference(x)
        p = 0.5 if ratio is None else float(ratio)
        if p == 0.0:
            return inference(x)
        if p >= 1.0:
            keep = torch.zeros_like(x, dtype=torch.bool)
            out = x * 0
        else:
            keep = torch.rand_like(x, dtype=torch.float32) >= p
            out = x * keep.to(x.dtype) * (1.0 / (1.0 - p))
        return (out, keep) if mask_wanted else out

    return fn
