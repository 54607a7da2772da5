"""Which constant inputs are trainable, and what role each plays.

A *weight* is the floating-point constant on the weight input of Conv, ConvTranspose, Gemm or
MatMul: it becomes a prunable `nn.Parameter`. Its `WeightInfo` records the layout and the
reduction (input-channel) axis, because sparsity patterns need them: 2:4 groups run along the
reduction axis (TensorRT's rule), filter pruning removes slices along the output axis.

Biases and normalisation affine parameters also become parameters (fine-tuning needs them),
but they are not prunable. Every other constant stays a buffer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import onnx
import torch

from .context import NodeContext


@dataclass(frozen=True)
class WeightInfo:
    """The role of one prunable weight tensor, addressed by its ONNX tensor name."""

    name: str
    op_type: str  # consumer: Conv, ConvTranspose, Gemm or MatMul
    node: str  # consumer node name (or "#index" when unnamed)
    shape: tuple[int, ...]
    layout: str  # e.g. "OIHW", "IOHW" (ConvTranspose), "NK" (Gemm transB=1), "KN" (MatMul)
    reduction_axis: int  # the axis summed over by the consumer (input channels / K)
    output_axis: int  # the axis indexing output channels / features
    groups: int = 1

    @property
    def reduction_size(self) -> int:
        """Length of the reduction axis (what N:M groups run along)."""
        return self.shape[self.reduction_axis]

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


@dataclass(frozen=True)
class TrainableInput:
    """A constant node input that should become an nn.Parameter."""

    input_index: int
    weight: WeightInfo | None  # None for biases / norm parameters (trainable, not prunable)


def _spatial_letters(rank: int) -> str:
    return "DHW"[3 - (rank - 2):] if rank >= 3 else ""


def _is_float(t: torch.Tensor | None) -> bool:
    return t is not None and t.is_floating_point()


def trainable_inputs(ctx: NodeContext, node_label: str) -> list[TrainableInput]:
    """The inputs of this node that become parameters, with the weight's role if prunable."""
    op = ctx.op_type
    result: list[TrainableInput] = []

    def info(index, layout, reduction_axis, output_axis, groups=1):
        shape = tuple(ctx.const(index).shape)
        return WeightInfo(ctx.inputs[index], op, node_label, shape, layout, reduction_axis, output_axis, groups)

    if op in ("Conv", "ConvTranspose") and _is_float(ctx.const(1)):
        rank = ctx.const(1).dim()
        groups = int(ctx.attr("group", 1))
        spatial = _spatial_letters(rank)
        if op == "Conv":  # [C_out, C_in/g, k...]: sums over axis 1 and the kernel taps
            result.append(TrainableInput(1, info(1, "OI" + spatial, 1, 0, groups)))
        else:  # [C_in, C_out/g, k...]: ConvTranspose sums over its input channels, axis 0
            result.append(TrainableInput(1, info(1, "IO" + spatial, 0, 1, groups)))
    elif op == "Gemm":
        trans_a, trans_b = int(ctx.attr("transA", 0)), int(ctx.attr("transB", 0))
        if _is_float(ctx.const(1)) and ctx.const(1).dim() == 2:
            # B is [K, N], or [N, K] when transposed; the reduction runs along K
            result.append(TrainableInput(1, info(1, "NK" if trans_b else "KN", 1 if trans_b else 0, 0 if trans_b else 1)))
        elif _is_float(ctx.const(0)) and ctx.const(0).dim() == 2:
            # A constant A times a variable B: A is [M, K] (or [K, M]), its rows are outputs
            result.append(TrainableInput(0, info(0, "KM" if trans_a else "MK", 0 if trans_a else 1, 1 if trans_a else 0)))
    elif op == "MatMul":
        b, a = ctx.const(1), ctx.const(0)
        if _is_float(b) and b.dim() >= 2:
            result.append(TrainableInput(1, info(1, "KN", b.dim() - 2, b.dim() - 1)))
        elif _is_float(a) and a.dim() >= 2:
            result.append(TrainableInput(0, info(0, "MK", a.dim() - 1, a.dim() - 2)))

    # non-prunable trainable inputs: biases and normalisation affine parameters
    bias_inputs = {
        "Conv": (2,),
        "ConvTranspose": (2,),
        "Gemm": (2,),
        "BatchNormalization": (1, 2),
        "InstanceNormalization": (1, 2),
        "LayerNormalization": (1, 2),
        "PRelu": (1,),
    }.get(op, ())
    for i in bias_inputs:
        if _is_float(ctx.const(i)):
            result.append(TrainableInput(i, None))
    return result


def matmul_bias_input(add: onnx.NodeProto, producers: dict[str, onnx.NodeProto], constants) -> int | None:
    """Index of the bias input of `add` when it adds a 1-D float constant to a MatMul output.

    Exporters write `Linear` on 3-D inputs as MatMul followed by Add; that Add's constant is
    the layer's bias and should train like Gemm's C.
    """
    if add.op_type != "Add" or len(add.input) != 2:
        return None
    for i in (0, 1):
        other = add.input[1 - i]
        const = constants.get(add.input[i])
        producer = producers.get(other)
        if producer is not None and producer.op_type == "MatMul" and _is_float(const) and const.dim() == 1:
            return i
    return None
