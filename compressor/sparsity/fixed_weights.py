"""Weights that are not learned and must stay dense.

Exporters write some fixed operators as convolutions: YOLOv8's distribution-focal decoding is
a 1x16x1x1 Conv whose weights are 0..15 (the expectation over 16 softmax bins), a box or
Gaussian filter is a conv of equal or dyadic entries, Sobel and one-hot selection kernels are
small integers. Pruning them changes what the operator computes (half of 0..15 gone shrinks
every predicted box), and magnitude ranking has nothing to rank. They are found from the values
alone, with tests that learned float weights do not pass: all entries equal, an exact
arithmetic progression along an axis, exact small integers, or a handful of exact dyadic values.
"""

from __future__ import annotations

from typing import Mapping

import onnx
import torch

from ..onnx_import.weights import WeightInfo

# Float32 weights written from exact constants agree to a few ulps; learned weights never do.
REL_TOL = 1e-6
MIN_ARANGE_LENGTH = 4  # a progression of 3 values is too easy to meet by accident
MAX_SMALL_INTEGER = 255
MAX_FEW_VALUES = 8  # "a handful": binomial and bilinear kernels have at most this many distinct values
MAX_DYADIC_BITS = 8  # values k / 2^s with s <= 8 (1/256: a 5x5 binomial filter)
PROBE = 64  # entries tested before the whole tensor
# ops that pass a tensor through unchanged in value, walked when looking for the softmax before a DFL conv
_PASS_THROUGH = {"Reshape", "Transpose", "Identity", "Cast", "Flatten", "Squeeze", "Unsqueeze"}


def _fmt(x: float) -> str:
    return f"{x:g}"


def _is_constant(w: torch.Tensor, scale: float) -> bool:
    return float(w.max() - w.min()) <= REL_TOL * scale


def _arange_axis(w: torch.Tensor, scale: float) -> int | None:
    """An axis along which every fibre is the same-direction arithmetic progression with a nonzero step."""
    for axis in range(w.dim()):
        n = w.shape[axis]
        if n < MIN_ARANGE_LENGTH:
            continue
        fibres = w.movedim(axis, -1).reshape(-1, n)
        if not _progression(fibres[:1], scale):  # one fibre decides for learned weights, cheaply
            continue
        if _progression(fibres, scale):
            return axis
    return None


def _progression(fibres: torch.Tensor, scale: float) -> bool:
    steps = fibres.diff(dim=1)
    first = steps[:, :1]
    return bool((first.abs() > REL_TOL * scale).all()) and bool(((steps - first).abs() <= REL_TOL * scale).all())


def _on_grid(w: torch.Tensor, step: float, scale: float) -> bool:
    """Every entry is a multiple of `step` (a probe of the first entries first: learned weights fail it at once)."""
    tol = REL_TOL * max(scale, 1.0) / step
    for part in (w.reshape(-1)[:PROBE], w):
        scaled = part / step
        if not bool(((scaled - scaled.round()).abs() <= tol).all()):
            return False
    return True


def _is_small_integer(w: torch.Tensor, scale: float) -> bool:
    return scale <= MAX_SMALL_INTEGER and _on_grid(w, 1.0, scale)


def _dyadic_values(w: torch.Tensor, scale: float) -> list[float] | None:
    """The distinct values if there are at most MAX_FEW_VALUES and each is k / 2^s, s <= MAX_DYADIC_BITS."""
    if not _on_grid(w, 1.0 / (1 << MAX_DYADIC_BITS), scale):  # before sorting for unique values
        return None
    values = torch.unique(w)
    return values.tolist() if values.numel() <= MAX_FEW_VALUES else None


def _axis_name(info: WeightInfo, axis: int) -> str:
    if axis == info.reduction_axis:
        return "input channels"
    if axis == info.output_axis:
        return "output channels"
    return f"axis {axis}"


def _consumer(graph: onnx.GraphProto, info: WeightInfo) -> onnx.NodeProto | None:
    for node in graph.node:
        if node.op_type == info.op_type and info.name in node.input:
            return node
    return None


def _after_softmax(graph: onnx.GraphProto, info: WeightInfo) -> bool:
    """True when the layer's data input comes from a Softmax through reshapes/transposes only."""
    node = _consumer(graph, info)
    if node is None:
        return False
    producers = {out: n for n in graph.node for out in n.output}
    data = next((x for x in node.input if x and x != info.name), None)
    for _ in range(8):  # a DFL block has two or three reshapes/transposes in between
        producer = producers.get(data)
        if producer is None:
            return False
        if producer.op_type == "Softmax":
            return True
        if producer.op_type not in _PASS_THROUGH:
            return False
        data = producer.input[0]
    return False


def classify_weight(weight: torch.Tensor, info: WeightInfo, graph: onnx.GraphProto | None = None) -> str | None:
    """Why this weight is fixed (a sentence for the report), or None when it looks learned."""
    w = weight.detach().to(torch.float64)
    if w.numel() < 2:
        return None
    scale = float(w.abs().max())  # NaN or inf make every test below false
    if _is_constant(w, scale):
        # a box/averaging filter, or a placeholder: either way magnitude has nothing to rank
        return f"fixed weights: constant tensor (every entry {_fmt(float(w.reshape(-1)[0]))})"
    axis = _arange_axis(w, scale)
    if axis is not None:
        fibre = w.movedim(axis, -1).reshape(-1, w.shape[axis])[0]
        span = f"{_fmt(float(fibre[0]))}..{_fmt(float(fibre[-1]))}"
        if graph is not None and _after_softmax(graph, info):
            why = "distribution-focal decoding: the expectation over softmax bins"
        else:
            why = "an index ramp, e.g. a decoding integral"
        return f"fixed weights: arange {span} along {_axis_name(info, axis)} ({why})"
    if _is_small_integer(w, scale):
        lo, hi = int(round(float(w.min()))), int(round(float(w.max())))
        kind = "0/1 selection or one-hot kernel" if (lo, hi) == (0, 1) else "e.g. a Sobel or difference kernel"
        return f"fixed weights: exact small integers {lo}..{hi} ({kind})"
    values = _dyadic_values(w, scale)
    if values is not None:
        shown = ", ".join(_fmt(v) for v in values[:5]) + (", …" if len(values) > 5 else "")
        return f"fixed weights: {len(values)} exact dyadic values ({shown}; e.g. a bilinear or binomial kernel)"
    return None


def find_fixed_weights(module) -> dict[str, str]:
    """Prunable weights of an imported module that are not learned: name -> reason, in execution order.

    Pass the result as `plan_layers(..., keep_dense=...)` so they stay dense whatever the pattern.
    """
    graph = module.onnx_model.graph if getattr(module, "onnx_model", None) is not None else None
    found: dict[str, str] = {}
    for name, info in module.weights.items():
        reason = classify_weight(module.parameter(name), info, graph)
        if reason is not None:
            found[name] = reason
    return found


def describe(fixed: Mapping[str, str]) -> str:
    """One report sentence summarising what was found."""
    if not fixed:
        return "No layer has fixed (non-learned) weights."
    names = ", ".join(list(fixed)[:3]) + (f" and {len(fixed) - 3} more" if len(fixed) > 3 else "")
    return f"{len(fixed)} layer(s) hold fixed, non-learned weights and stay dense: {names}."
