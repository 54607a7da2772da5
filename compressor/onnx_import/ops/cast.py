"""Cast."""

import torch
from onnx import TensorProto

from ..registry import register
from ..tensors import torch_dtype

# The importer keeps uint16/uint32/uint64 tensors as int64 (torch has few kernels for those
# types; see tensors.to_torch), so a Cast to them produces int64 holding the unsigned value.
_WIDE_UNSIGNED_MASK = {
    TensorProto.UINT16: 0xFFFF,
    TensorProto.UINT32: 0xFFFFFFFF,
    TensorProto.UINT64: None,  # int64 cannot hold values >= 2**63; those are out of reach
}


def _type_name(onnx_type: int) -> str:
    try:
        return TensorProto.DataType.Name(onnx_type)
    except ValueError:
        return str(onnx_type)


# 9: string casts added (unsupported here); 13: bfloat16; 19: float8 types and the `saturate`
# attribute, which only concerns float8 targets; 21: int4/uint4 types.
# 23 (float4e2m1), 24 (float8e8m0 and its `round_mode` attribute), 25 (int2/uint2) and
# 28 (float6 types) only add element types torch cannot represent, refused below.
@register("Cast", versions=[9, 13, 19, 21, 23, 24, 25, 28])
def cast(ctx):
    to = ctx.attr("to")
    if to is None:
        raise ValueError("Cast needs the 'to' attribute")
    to = int(to)
    if to == TensorProto.STRING:
        raise ValueError("Cast to string is not supported")
    if to in _WIDE_UNSIGNED_MASK:
        mask = _WIDE_UNSIGNED_MASK[to]

        if mask is None:

            def fn_u64(x):
                return x.to(torch.int64)

            return fn_u64

        def fn_unsigned(x):
            return torch.bitwise_and(x.to(torch.int64), mask)

        return fn_unsigned
    try:
        dtype = torch_dtype(to)
    except TypeError:
        raise ValueError(f"Cast to {_type_name(to)} is not supported") from None

    def fn(x):
        return x.to(dtype)

    return fn
