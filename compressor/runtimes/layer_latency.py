"""A per-layer latency table on a runtime: what each prunable layer costs at fewer channels, so a
search can weigh channel ratios by time rather than by multiply-adds (issue 12).

Each prunable Conv/ConvTranspose/Gemm/MatMul is cut out as a one-node model at the input shape the
channel analysis recorded, and timed under the latency protocol at a few fractions p of its
channel product (input channels x output channels kept, both scaled by sqrt(p) when both can
shrink, the one side that can otherwise; a depthwise conv's single side). All points of a layer
are timed interleaved in one measurement. Between points the time is interpolated linearly in p.
The rest of the network (what no table covers: pooling, activations, copies) is the whole dense
model's time minus the layers' full-size times, so a prediction is

    predicted(model) = rest + sum over layers of layer(p_layer),

and the search's result is checked against a whole-model measurement at the end (the measure stage).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..onnx_import.weights import WeightInfo
from .base import Runtime
from .latency import LatencyProtocol, measure_latency

POINTS = (0.25, 0.5, 0.75, 1.0)
TABLE_PROTOCOL = LatencyProtocol(warmup_runs=3, warmup_seconds=0.05, seconds=0.3, min_runs=10, max_runs=2000,
                                 max_seconds=10.0)


@dataclass
class LayerCurve:
    weight: str
    node: str
    sides: str  # "both", "out", "in", "tied" (depthwise) or "none": which channel counts can shrink
    points: list[tuple[float, float]] = field(default_factory=list)  # (fraction of the channel product, p50 ms)

    def at(self, p: float) -> float:
        xs = [x for x, _ in self.points]
        ys = [y for _, y in self.points]
        return float(np.interp(min(max(p, xs[0]), xs[-1]), xs, ys))

    def to_dict(self) -> dict:
        return {"weight": self.weight, "node": self.node, "sides": self.sides,
                "points": [[x, y] for x, y in self.points]}


@dataclass
class LatencyTable:
    runtime: str
    curves: dict[str, LayerCurve]
    dense_ms: float  # the whole dense model, p50
    rest_ms: float  # dense_ms minus the layers at full size (never below 0)

    def predict(self, fractions: Mapping[str, float]) -> float:
        """Predicted p50 (ms) with each layer at its fraction of the channel product (absent: 1)."""
        return self.rest_ms + sum(curve.at(fractions.get(name, 1.0)) for name, curve in self.curves.items())

    def to_dict(self) -> dict:
        return {"runtime": self.runtime, "dense_ms": self.dense_ms, "rest_ms": self.rest_ms,
                "layers": [c.to_dict() for c in self.curves.values()]}


def build_latency_table(model_path: Path, analysis, infos: Mapping[str, WeightInfo], runtime: Runtime,
                        shrinkable: Mapping[str, tuple[bool, bool]], feeds: Mapping[str, np.ndarray], *,
                        points: Sequence[float] = POINTS, protocol: LatencyProtocol = TABLE_PROTOCOL,
                        log=lambda message: None) -> LatencyTable:
    """Time every layer of `infos` at `points` on `runtime`; `shrinkable[weight]` = (input side,
    output side) can lose channels (from the channel plan's groups)."""
    graph = analysis.graph
    opset = next((o.version for o in graph.model.opset_import if o.domain in ("", "ai.onnx")), 13)
    curves: dict[str, LayerCurve] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, info) in enumerate(infos.items()):
            node = graph.by_label.get(info.node)
            if node is None or any(n not in graph.shapes for n in node.input[:2]):
                continue
            shrink_in, shrink_out = shrinkable.get(name, (False, False))
            tied = _depthwise(graph, info)
            sides = "tied" if tied and (shrink_in or shrink_out) else \
                {(True, True): "both", (False, True): "out", (True, False): "in"}.get((shrink_in, shrink_out), "none")
            at = list(points) if sides != "none" else [1.0]
            files, inputs = {}, {}
            for k, p in enumerate(at):
                r_in, r_out = _ratios(sides, p)
                # each point reads its own input name: the points differ in input shape but share one feed dict
                proto, feed = _one_layer(graph, node, info, r_in, r_out, tied, opset, f"x{k}")
                path = Path(tmp) / f"l{i}_{p}.onnx"
                onnx.save_model(proto, str(path))
                files[f"{p}"] = path
                inputs.update(feed)
            stats = measure_latency(files, inputs, runtime=runtime, protocol=protocol)
            curves[name] = LayerCurve(name, info.node, sides, [(float(p), stats[f"{p}"].p50_ms) for p in at])
            log(f"latency table: {info.node} {sides} " + ", ".join(f"{p:g}: {stats[f'{p}'].p50_ms:.3f} ms" for p in at))
        whole = measure_latency({"dense": model_path}, feeds, runtime=runtime,
                                protocol=LatencyProtocol(seconds=1.0, min_runs=10))["dense"].p50_ms
    rest = max(whole - sum(c.at(1.0) for c in curves.values()), 0.0)
    return LatencyTable(runtime.name, curves, whole, rest)


def _ratios(sides: str, p: float) -> tuple[float, float]:
    if sides == "both":
        return math.sqrt(p), math.sqrt(p)
    if sides == "out":
        return 1.0, p
    if sides == "in":
        return p, 1.0
    if sides == "tied":
        return p, p
    return 1.0, 1.0


def _depthwise(graph, info: WeightInfo) -> bool:
    return info.op_type == "Conv" and info.groups > 1 and info.shape[info.reduction_axis] == 1


def _count(n: int, r: float) -> int:
    return max(1, int(round(n * r)))


def _one_layer(graph, node: onnx.NodeProto, info: WeightInfo, r_in: float, r_out: float, tied: bool, opset: int,
               input_name: str):
    """A one-node model of `node` with its channels scaled, reading `input_name`, and a random feed for it."""
    x_source = node.input[1] if node.input[0] == info.name else node.input[0]  # the activation side
    x_name = input_name
    x_shape = list(graph.shapes[x_source])
    weight = graph.constants[info.name]
    w = weight
    out_keep = _count(weight.shape[info.output_axis], r_out)
    w = np.take(w, range(out_keep), axis=info.output_axis)
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if tied:  # depthwise: input channels = groups = output channels
        x_axis = 1
        x_shape[x_axis] = out_keep
        attributes["group"] = out_keep
    else:
        in_keep = _count(weight.shape[info.reduction_axis], r_in)
        w = np.take(w, range(in_keep), axis=info.reduction_axis)
        x_axis = _input_axis(info, len(x_shape))
        x_shape[x_axis] = in_keep * (x_shape[x_axis] // weight.shape[info.reduction_axis])
    inits = [numpy_helper.from_array(np.ascontiguousarray(w), info.name)]
    inputs = [x_name, info.name] if info.name == node.input[1] else [info.name, x_name]
    if node.op_type in ("Conv", "ConvTranspose", "Gemm") and len(node.input) > 2 and node.input[2] in graph.constants:
        bias = graph.constants[node.input[2]]
        if bias.ndim >= 1 and bias.shape[-1] == weight.shape[info.output_axis]:
            bias = np.take(bias, range(out_keep), axis=bias.ndim - 1)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(bias), node.input[2]))
        inputs.append(node.input[2])
    y = node.output[0]
    one = helper.make_node(node.op_type, inputs, [y], **attributes)
    model_graph = helper.make_graph([one], "layer", [helper.make_tensor_value_info(x_name, onnx.TensorProto.FLOAT, x_shape)],
                                    [onnx.ValueInfoProto(name=y)], inits)
    model = helper.make_model(model_graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(graph.model.ir_version or 8, 10)
    feed = {x_name: np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)}
    return model, feed


def _input_axis(info: WeightInfo, rank: int) -> int:
    """The axis of the layer's activation input that the weight's reduction axis reads."""
    if info.op_type in ("Conv", "ConvTranspose"):
        return 1
    return rank - 1  # Gemm (transA = 0) and MatMul read the last axis
