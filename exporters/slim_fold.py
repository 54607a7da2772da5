"""Which requested channels can go, and the constants they leave behind (for exporters/slim.py).

A channel can be removed when it is dead: at every activation position of its group it holds one
value, the same for two different inputs and across spatial positions. That value a_c (a
BatchNormalization shift, a bias after ReLU) still reaches each *consumer* of the channel, the
Conv, ConvTranspose, Gemm or MatMul whose weight reads it. Where the consumer is linear over its
whole input (a Gemm or MatMul, a Conv without padding), a_c times the weight's slice is folded
into the consumer's bias, exactly; where padding makes the contribution vary near the border (a
padded Conv, a ConvTranspose) a negligible a_c is dropped and any other keeps the channel, with
the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx

from compressor.structure import ChannelAnalysis, ChannelGroup

# A channel is constant when its values spread by at most this, relative to its tensor's scale.
DEAD_SPREAD = 1e-6
# The smallest scale a tensor is measured against (as exporters/parity.py's NEAR_ZERO_SCALE).
MIN_SCALE = 1e-2

# Consumers: operator -> the input axis of its weight (input 1) that reads the channels
_CONSUMER_AXIS = {"Conv": 1, "ConvTranspose": 0, "MatMul": 0}


@dataclass
class Consumer:
    label: str
    node: onnx.NodeProto
    weight: str
    weight_axis: int  # the weight's axis that reads the input's channels
    x: str  # the activation read
    y: str  # the output


@dataclass
class Fold:
    """a[i] for each of the channel's indices `rows` along the consumer's weight input axis."""

    consumer: str
    rows: tuple[int, ...]
    values: np.ndarray


@dataclass
class Decision:
    """One requested channel: removed (with the constants to fold) or refused with the reason."""

    refused: str | None = None
    folds: list[Fold] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # consumers whose negligible constant is dropped


def consumers(analysis: ChannelAnalysis) -> dict[tuple[str, int], list[Consumer]]:
    """(weight, input axis) -> the channel-mixing nodes reading channels through that weight."""
    g = analysis.graph
    found: dict[tuple[str, int], list[Consumer]] = {}
    for label, node in g.nodes:
        if node.op_type == "Gemm":
            axis = 1 if int(g.attr(label, "transB", 0)) else 0
        elif node.op_type in _CONSUMER_AXIS:
            axis = _CONSUMER_AXIS[node.op_type]
        else:
            continue
        if len(node.input) < 2 or g.const(node.input[1]) is None:
            continue
        found.setdefault((node.input[1], axis), []).append(
            Consumer(label, node, node.input[1], axis, node.input[0], node.output[0]))
    return found


def scales(runs: list[Mapping[str, np.ndarray]], names) -> dict[str, float]:
    out = {}
    for name in names:
        values = [np.asarray(r[name], dtype=np.float64) for r in runs if name in r]
        m = max((float(np.max(np.abs(v))) if v.size else 0.0 for v in values), default=0.0)
        out[name] = max(m, MIN_SCALE)
    return out


def channel_values(group: ChannelGroup, channel: int, runs: list[Mapping[str, np.ndarray]],
                   scale: Mapping[str, float]) -> dict[tuple[str, int], np.ndarray] | str:
    """The channel's constant at each activation position (one per index: a flattened channel has
    a block of features), or why it is not dead."""
    values = {}
    for position in group.activations():
        tensor, axis = position
        indices = list(group.positions[position][channel])
        seen = [r[tensor] for r in runs if tensor in r]
        if not seen:
            return f"no value of {tensor!r} to check that the channel is dead"
        per_run = [np.moveaxis(np.take(v, indices, axis=axis).astype(np.float64), axis, 0).reshape(len(indices), -1)
                   for v in seen]
        flat = np.concatenate(per_run, axis=1)
        const = flat[:, 0]
        spread = float(np.max(np.abs(flat - const[:, None]))) if flat.size else 0.0
        if not np.isfinite(spread) or spread > DEAD_SPREAD * scale[tensor]:
            return f"not dead: its values in {tensor!r} vary (by {spread:.3g}) between inputs or positions"
        values[position] = const
    return values


def decide(group: ChannelGroup, channel: int, analysis: ChannelAnalysis, runs, scale,
           by_weight: Mapping[tuple[str, int], list[Consumer]], tolerance: float,
           weights: Mapping[str, np.ndarray] | None = None) -> Decision:
    """Whether `channel` can go, and what it leaves behind. A consumer whose slice of the channel is
    all zero in `weights` (the model being slimmed; default: the analysed graph's constants), as the
    channel pattern masks it, reads nothing of the channel's constant: there is nothing to fold."""
    values = channel_values(group, channel, runs, scale)
    if isinstance(values, str):
        return Decision(refused=values)
    g = analysis.graph
    decision = Decision()
    for position in group.weights():
        for user in by_weight.get(position, []):
            x_position = (user.x, g.rank(user.x) - 1 if user.node.op_type == "MatMul" else 1)
            if x_position not in values:
                return Decision(refused=f"{user.node.op_type} node {user.label!r} reads the channel from "
                                        f"{user.x!r}, whose channels are not tracked")
            a = values[x_position]
            if not np.any(a):
                continue
            rows = group.positions[position][channel]
            w = weights.get(user.weight) if weights is not None else g.const(user.weight)
            if w is not None and not np.any(np.take(w, list(rows), axis=user.weight_axis)):
                continue  # the consumer's slice of the channel is zero (masked): the constant reaches nothing
            why = _not_foldable(user, g)
            if why is None:
                decision.folds.append(Fold(user.label, rows, a))
            elif float(np.max(np.abs(a))) <= tolerance * scale[user.x]:
                decision.dropped.append(user.label)
            else:
                return Decision(refused=f"constant {float(a[np.argmax(np.abs(a))]):.4g} flows into {why}")
    return decision


def _not_foldable(user: Consumer, g) -> str | None:
    node, label = user.node, user.label
    bias = node.input[2] if len(node.input) > 2 else ""
    if bias and g.const(bias) is None:
        return f"{node.op_type} node {label!r}, whose bias is computed at run time"
    if node.op_type == "ConvTranspose":
        return f"ConvTranspose node {label!r}"
    if node.op_type == "Conv":
        pads = g.attr(label, "pads", None)
        auto_pad = g.attr(label, "auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        if (pads is not None and any(int(p) for p in pads)) or auto_pad not in ("NOTSET", "VALID"):
            return f"padded Conv node {label!r}"
    return None


def bias_delta(user: Consumer, folds: list[Fold], g, consts: Mapping[str, np.ndarray]) -> np.ndarray:
    """What the folded constants add to each output channel of `user` (float64, one per output)."""
    w = np.asarray(consts[user.weight], dtype=np.float64)
    op = user.node.op_type
    if op == "Conv":
        per_input = w.sum(axis=tuple(range(2, w.ndim))).T  # [C_in, M]
        alpha = 1.0
    elif op == "Gemm":
        per_input = w.T if int(g.attr(user.label, "transB", 0)) else w  # [K, M]
        alpha = float(g.attr(user.label, "alpha", 1.0))
    else:  # MatMul
        per_input = w
        alpha = 1.0
    delta = np.zeros(per_input.shape[1], dtype=np.float64)
    for fold in folds:
        delta += alpha * (fold.values @ per_input[list(fold.rows), :])
    return delta
