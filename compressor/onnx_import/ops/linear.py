"""Matrix products: Gemm, MatMul, Einsum."""

import torch
import torch.nn.functional as F

from ..registry import register


# Gemm-9 (what opsets 9/10 select) requires C; 11 makes C optional; 13 adds bfloat16.
# Y = alpha * A' @ B' + beta * C, C unidirectionally broadcast to [M, N].
@register("Gemm", versions=[9, 11, 13])
def gemm(ctx):
    alpha = float(ctx.attr("alpha", 1.0))
    beta = float(ctx.attr("beta", 1.0))
    trans_a = bool(ctx.attr("transA", 0))
    trans_b = bool(ctx.attr("transB", 0))

    if alpha == 1.0 and beta == 1.0 and not trans_a and trans_b:
        # nn.Linear's layout (weight [N, K]): one fused addmm. F.linear broadcasts any
        # unidirectionally broadcastable bias (scalar, [N], [1, N], [M, 1], [M, N]).
        def linear(a, b, c=None):
            return F.linear(a, b, c)

        return linear

    if alpha == 1.0 and beta == 1.0 and not trans_a:

        def matmul_add(a, b, c=None):
            y = a @ b
            return y if c is None else y + c

        return matmul_add

    def general(a, b, c=None):
        if trans_a:
            a = a.t()
        if trans_b:
            b = b.t()
        y = a @ b
        if alpha != 1.0:
            y = y * alpha
        if c is not None and beta != 0.0:
            y = y + (c * beta if beta != 1.0 else c)
        return y if y.dtype == a.dtype else y.to(a.dtype)  # integer Gemm with float alpha/beta

    return general


# MatMul-9 and -13 (13 adds bfloat16): numpy matmul semantics, which torch.matmul shares
# (1-D operands promoted and the added axis removed; batch dimensions broadcast).
@register("MatMul", versions=[9, 13])
def matmul(ctx):
    return torch.matmul


# Einsum-12; 28 adds bfloat16 only.
@register("Einsum", versions=[12, 28])
def einsum(ctx):
    equation = ctx.attr("equation")
    if not isinstance(equation, str):
        raise ValueError("Einsum needs an equation string attribute")
    equation = "".join(equation.split())  # ONNX allows spaces around terms and the arrow

    def fn(*inputs):
        return torch.einsum(equation, *inputs)

    return fn
