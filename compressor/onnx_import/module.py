"""The imported model: an nn.Module that runs the ONNX graph with torch operations."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn

from .batching import batch_size_of, run_in_batches
from .weights import WeightInfo

# Slot 0 of the value table always holds None (what an omitted optional input reads) and
# slot 1 is a sink for node outputs the graph never names.
NONE_SLOT, SINK_SLOT = 0, 1


@dataclass(frozen=True)
class Step:
    """One node of the execution plan."""

    fn: Callable
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    free: tuple[int, ...]  # slots last read by this step, released after it (saves memory)
    label: str  # node name or op type, for error messages


@dataclass(frozen=True)
class ConstantSource:
    """Where a parameter or buffer came from in the original graph.

    `folded_from` lists the nodes that computed it at import (empty for an initializer); the
    exporter replaces exactly those with an initializer of the same tensor name.
    """

    onnx_name: str
    onnx_type: int  # element type in the file, restored on export
    initializer: bool
    folded_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tail:
    """Post-processing after the last prunable weight that the importer does not run.

    The nodes stay in the graph as they are (the exporter copies the whole original graph);
    the module stops at `boundary`, the tensors the tail reads, and is trained on those.
    """

    nodes: tuple[str, ...]  # labels of every tail node, in graph order
    ops: tuple[str, ...]  # distinct op types of the nodes that forced the tail
    forced_by: tuple[str, ...]  # one line per forcing node: its label and why it cannot run
    boundary: tuple[str, ...]  # head tensors the tail reads (all among the module's outputs)
    graph_outputs: tuple[str, ...]  # the original graph's outputs
    outputs: tuple[str, ...]  # the graph outputs that the tail computes

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in self.__dict__.items()}


class OnnxModule(nn.Module):
    """A trainable PyTorch module equivalent to an ONNX graph.

    Weights keep their ONNX identity: `parameter(name)` returns the parameter for an ONNX tensor
    name and `weights` describes every prunable weight (layout, reduction axis). Normalisation
    layers use their stored statistics, as in ONNX inference, in train and eval mode alike.
    """

    def __init__(
        self,
        steps: list[Step],
        num_slots: int,
        input_names: list[str],
        input_slots: list[int],
        output_names: list[str],
        output_slots: list[int],
        constants: dict[str, tuple[int, torch.Tensor, bool, ConstantSource]],
        weights: dict[str, WeightInfo],
        onnx_model,
        source_path=None,
        uses_external_data: bool = False,
        input_shapes: dict[str, list] | None = None,
        tail: Tail | None = None,
    ):
        super().__init__()
        self._steps = steps
        self._num_slots = num_slots
        self.input_names = list(input_names)
        self._input_slots = list(input_slots)
        # without a tail these are the graph outputs; with one, the head's graph outputs then
        # the boundary tensors the tail reads
        self.output_names = list(output_names)
        self.graph_output_names = [o.name for o in onnx_model.graph.output]
        self.tail = tail
        self._output_slots = list(output_slots)
        self.onnx_model = onnx_model  # the original ModelProto; the exporter copies it
        self.source_path = source_path
        self.uses_external_data = uses_external_data
        self.input_shapes = dict(input_shapes or {})  # ONNX-declared shapes (ints or names)
        self.weights = dict(weights)
        self.batch_chunk: int | None = None  # feed the graph this many samples at a time (None: any batch)
        self.sources: dict[str, ConstantSource] = {}
        self._attr_of: dict[str, str] = {}  # ONNX tensor name -> attribute name
        self._const_slots: list[tuple[int, str, bool]] = []
        used_attrs: set[str] = set()
        for onnx_name, (slot, value, trainable, source) in constants.items():
            attr = _attribute_name(onnx_name, used_attrs, taken=lambda a: hasattr(self, a))
            if trainable:
                self.register_parameter(attr, nn.Parameter(value, requires_grad=value.is_floating_point()))
            else:
                self.register_buffer(attr, value)
            self._attr_of[onnx_name] = attr
            self.sources[onnx_name] = source
            self._const_slots.append((slot, attr, trainable))

    @property
    def num_nodes(self) -> int:
        """Nodes executed per forward pass (constant subgraphs were folded at import)."""
        return len(self._steps)

    # ---- identity of weights -------------------------------------------------------------
    def parameter(self, onnx_name: str) -> nn.Parameter:
        """The parameter holding the ONNX tensor `onnx_name`."""
        attr = self._attr_of.get(onnx_name)
        if attr is None or attr not in self._parameters:
            raise KeyError(f"{onnx_name!r} is not a trainable tensor of this model")
        return self._parameters[attr]

    def onnx_parameters(self) -> dict[str, nn.Parameter]:
        """All trainable tensors keyed by ONNX name (weights, biases, norm parameters)."""
        return {n: self._parameters[a] for n, a in self._attr_of.items() if a in self._parameters}

    def onnx_buffers(self) -> dict[str, torch.Tensor]:
        return {n: self._buffers[a] for n, a in self._attr_of.items() if a in self._buffers}

    def weight_parameters(self) -> dict[str, nn.Parameter]:
        """The prunable weights (Conv/ConvTranspose/Gemm/MatMul weight inputs) by ONNX name."""
        return {n: self.parameter(n) for n in self.weights}

    def step_function(self, label: str) -> Callable:
        """The function the node `label` runs now (see `replace_step_function`)."""
        for step in self._steps:
            if step.label == label:
                return step.fn
        raise KeyError(f"no node {label!r} in this model's execution plan")

    def replace_step_function(self, label: str, fn: Callable) -> None:
        """Run `fn` for the node `label` instead of its own function: same inputs, same outputs.
        For runtimes that give a node another kernel (e.g. 2:4 weights on sparse kernels); the
        graph, the parameters and the export are unchanged."""
        for i, step in enumerate(self._steps):
            if step.label == label:
                self._steps[i] = replace(step, fn=fn)
                return
        raise KeyError(f"no node {label!r} in this model's execution plan")

    # ---- execution -------------------------------------------------------------------------
    def forward(self, *inputs: torch.Tensor):
        """Run the graph. A multi-input model also takes one list of its inputs (a collated batch).

        A model that only runs at a fixed batch (`batch_chunk`, set by the pipeline from
        `batching.probe_batch`) is fed that many samples at a time.
        """
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            inputs = tuple(inputs[0])
        if self.batch_chunk is not None and batch_size_of(inputs) != self.batch_chunk:
            return run_in_batches(self.run_unbatched, inputs, self.batch_chunk, self.output_names)
        return self.run_unbatched(*inputs)

    def run_unbatched(self, *inputs: torch.Tensor):
        """One pass of the graph over exactly these inputs."""
        if len(inputs) != len(self._input_slots):
            raise TypeError(f"model takes {len(self._input_slots)} inputs ({', '.join(self.input_names)}), got {len(inputs)}")
        env: list = [None] * self._num_slots
        for slot, value in zip(self._input_slots, inputs):
            env[slot] = value
        params, buffers = self._parameters, self._buffers
        for slot, attr, trainable in self._const_slots:
            env[slot] = params[attr] if trainable else buffers[attr]
        for step in self._steps:
            try:
                result = step.fn(*[env[i] for i in step.inputs])
            except Exception as exc:  # name the node: a shape error deep in a graph is otherwise opaque
                raise RuntimeError(f"ONNX node {step.label}: {exc}") from exc
            if len(step.outputs) == 1:
                env[step.outputs[0]] = result[0] if isinstance(result, (tuple, list)) else result
            else:
                for slot, value in zip(step.outputs, result):
                    env[slot] = value
            for slot in step.free:
                env[slot] = None
        outputs = tuple(env[s] for s in self._output_slots)
        return outputs[0] if len(outputs) == 1 else outputs

    def extra_repr(self) -> str:
        return (
            f"nodes={len(self._steps)}, inputs={self.input_names}, outputs={self.output_names}, "
            f"prunable_weights={len(self.weights)}"
            + (f", tail={len(self.tail.nodes)} nodes kept as is" if self.tail else "")
        )


def _attribute_name(onnx_name: str, used: set[str], taken=lambda name: False) -> str:
    """A valid, unique attribute name for an ONNX tensor name (which may contain '.', ':', '/')."""
    base = "".join(c if c.isalnum() or c == "_" else "_" for c in onnx_name) or "tensor"
    if base[0].isdigit():
        base = "t_" + base
    name, k = base, 1
    while name in used or taken(name):
        k += 1
        name = f"{base}_{k}"
    used.add(name)
    return name
