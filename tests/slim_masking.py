"""Masking for the slim tests: zero the producer side of chosen channels so they are dead in the
model (weights' output rows, biases, normalisation scale and shift, elementwise constants), as a
channel-pruning method leaves them before exporters/slim.py removes them."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from compressor.structure import ChannelAnalysis, ChannelGroup
from exporters.slim_fold import consumers


def _kept_constant(analysis: ChannelAnalysis) -> set[tuple[str, int]]:
    """Positions left as they are: consumer weights' input side, BatchNormalization running variance."""
    keep = set(consumers(analysis))
    for _, node in analysis.graph.nodes:
        if node.op_type == "BatchNormalization" and len(node.input) > 4:
            keep.add((node.input[4], 0))
    return keep


def _stored(model: onnx.ModelProto) -> set[str]:
    """Constants stored in the file: initializers and Constant node values (a tensor)."""
    constant_nodes = {n.output[0] for n in model.graph.node if n.op_type == "Constant"
                      and any(a.name == "value" for a in n.attribute)}
    return {t.name for t in model.graph.initializer} | constant_nodes


def producer_positions(analysis: ChannelAnalysis, group: ChannelGroup) -> list[tuple[str, int]]:
    stored = _stored(analysis.graph.model)
    keep = _kept_constant(analysis)
    return [p for p in group.weights() if p not in keep and p[0] in stored]


def weakest(analysis: ChannelAnalysis, group: ChannelGroup, fraction: float) -> list[int]:
    """The `fraction` of the group's channels with the smallest L2 norm of their producer weights."""
    norms = np.zeros(group.size)
    for tensor, axis in producer_positions(analysis, group):
        value = analysis.graph.constants[tensor].astype(np.float64)
        for c, indices in enumerate(group.positions[(tensor, axis)]):
            norms[c] += float(np.sum(np.take(value, list(indices), axis=axis) ** 2))
    return sorted(np.argsort(norms, kind="stable")[: int(group.size * fraction)].tolist())


def mask(model: onnx.ModelProto, analysis: ChannelAnalysis, chosen: dict[int, list[int]],
         keep_shift: bool = False) -> onnx.ModelProto:
    """A copy of `model` with the chosen channels' producer positions zeroed (keep_shift: leave
    biases and BatchNormalization shifts, so the dead channels carry a constant)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    values = {t.name: numpy_helper.to_array(t).copy() for t in out.graph.initializer}
    constants = {n.output[0]: n for n in out.graph.node if n.op_type == "Constant"}
    for name in _stored(out) - set(values):
        values[name] = numpy_helper.to_array(next(a.t for a in constants[name].attribute if a.name == "value")).copy()
    shifts = set()
    for _, node in analysis.graph.nodes:
        if node.op_type == "BatchNormalization":
            shifts.add(node.input[2])
        if node.op_type in ("Conv", "ConvTranspose", "Gemm") and len(node.input) > 2:
            shifts.add(node.input[2])
    by_id = {g.id: g for g in analysis.groups}
    for gid, channels in chosen.items():
        group = by_id[gid]
        for tensor, axis in producer_positions(analysis, group):
            if keep_shift and tensor in shifts:
                continue
            value = values[tensor]
            for c in channels:
                index = [slice(None)] * value.ndim
                index[axis] = list(group.positions[(tensor, axis)][c])
                value[tuple(index)] = 0
    for t in out.graph.initializer:
        t.CopyFrom(numpy_helper.from_array(values[t.name], t.name))
    for name, node in constants.items():
        if name in values:
            for a in node.attribute:
                if a.name == "value":
                    a.t.CopyFrom(numpy_helper.from_array(values[name], name))
    return out
