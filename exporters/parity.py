"""Does the exported file compute what the module computes? Checked with onnxruntime.

A module with a tail (post-processing the importer does not run, kept as is in the file) is
compared on its outputs, the tensors where the tail begins: onnxruntime runs a copy of the file
cut there. The whole file then runs once more, so onnxruntime also checks the tail itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from compressor.errors import ExportError, InferenceError
from compressor.onnx_import.inputs import random_inputs
from compressor.onnx_import.reader import node_reads
from compressor.onnx_import.tensors import torch_to_numpy
from compressor.runtimes import get_runtime

PARITY_RUNTIME = "onnxruntime-cpu"  # the reference the file is checked in; the messages name it
# Protobuf cannot serialise a message over 2 GiB: shape inference is skipped past it.
_PROTO_LIMIT = 2**31 - 1


@dataclass
class ParityResult:
    max_relative_error: float  # max over outputs of max|ort - torch| / max|torch| (inf: integers differ)
    per_output: dict[str, float] = field(default_factory=dict)
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    # with a tail: shape of each graph output the tail computes, from onnxruntime running the
    # whole file; None when the module has no tail (or the tail was not run)
    tail_outputs: dict[str, list[int]] | None = None

    def to_dict(self) -> dict:
        return {
            "max_relative_error": self.max_relative_error, "per_output": self.per_output,
            "input_shapes": self.input_shapes, "tail_outputs": self.tail_outputs,
        }


# An output whose every value is near zero (a text detector's probabilities on an input with no
# text: 1e-6) has no scale of its own: onnxruntime's fast sigmoid differs from torch's by ~1e-7 in
# the tails, which would read as a 10% mismatch. Below this magnitude the error is measured
# against it instead (so a 1e-4 parity bound means 1e-6 absolute there).
NEAR_ZERO_SCALE = 1e-2


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max(max |want|, NEAR_ZERO_SCALE)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    if want.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(want))), NEAR_ZERO_SCALE)
    return float(np.max(np.abs(got - want))) / scale


def output_error(got: np.ndarray, want: np.ndarray) -> float:
    """Relative error for floating-point outputs; integers and booleans (shapes, indices, masks)
    must match exactly: 0.0 when they do, inf when they do not."""
    got, want = np.asarray(got), np.asarray(want)
    if want.dtype.kind in "fc" or want.dtype.name == "bfloat16":
        return relative_error(got, want)
    return 0.0 if got.shape == want.shape and np.array_equal(got, want) else float("inf")


def check_parity(
    module, onnx_path, inputs: list[torch.Tensor] | None = None, input_shapes=None, seed: int = 0, *, run_tail: bool = True,
) -> ParityResult:
    """Run the file in onnxruntime and the module in torch on the same inputs; compare.

    run_tail: with a tail, also run the whole file (the tail must run without error). False
    compares the module's outputs only (a tail whose custom ops onnxruntime lacks).
    """
    if inputs is None:
        inputs = random_inputs(module, input_shapes, batch=2, seed=seed)  # batch 2 exercises dynamic batch
    feeds = {name: torch_to_numpy(t) for name, t in zip(module.input_names, inputs)}
    tail = getattr(module, "tail", None)
    if tail is None:
        ort_outputs = _run(Path(onnx_path), feeds, f"onnxruntime cannot run {onnx_path}")
    else:
        cut = head_model(onnx.load(str(onnx_path)), module.output_names)
        ort_outputs = _run(cut, feeds, f"onnxruntime cannot run {onnx_path} up to its tail")
    with torch.no_grad():
        torch_outputs = module(*inputs)
    torch_outputs = torch_outputs if isinstance(torch_outputs, tuple) else (torch_outputs,)
    per_output = {
        name: output_error(got, torch_to_numpy(want))
        for name, got, want in zip(module.output_names, ort_outputs, torch_outputs)
    }
    result = ParityResult(max(per_output.values(), default=0.0), per_output, {n: list(t.shape) for n, t in zip(module.input_names, inputs)})
    if tail is not None and run_tail:
        ops = ", ".join(tail.ops)
        whole = _run(Path(onnx_path), feeds, f"onnxruntime cannot run the tail kept as is in {onnx_path} ({ops})")
        shapes = dict(zip(module.graph_output_names, (list(np.shape(v)) for v in whole)))
        result.tail_outputs = {name: shapes[name] for name in tail.outputs}
    return result


def head_model(model: onnx.ModelProto, outputs: list[str]) -> onnx.ModelProto:
    """`model` (modified in place and returned) computing just `outputs`: the nodes they do not
    need, the tail among them, are dropped. Output types come from shape inference; where it has
    none, the output is left untyped and onnxruntime infers it."""
    graph = model.graph
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    needed: set[int] = set()
    stack = [producer[name] for name in outputs if name in producer]
    while stack:
        i = stack.pop()
        if i not in needed:
            needed.add(i)
            stack += [producer[name] for name in node_reads(graph.node[i]) if name in producer]
    kept = [node for i, node in enumerate(graph.node) if i in needed]
    del graph.node[:]
    graph.node.extend(kept)
    declared = {v.name: v for v in list(graph.input) + list(graph.output) + list(graph.value_info)}
    del graph.output[:]
    graph.output.extend(onnx.ValueInfoProto(name=name) for name in outputs)
    try:  # shape inference cannot serialise past 2 GiB and gives up on some custom ops
        inferred = onnx.shape_inference.infer_shapes(model) if model.ByteSize() <= _PROTO_LIMIT else model
        declared.update({v.name: v for v in inferred.graph.value_info})
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError):
        pass
    for out in graph.output:
        if out.name in declared and declared[out.name].type.HasField("tensor_type"):
            out.type.CopyFrom(declared[out.name].type)
    return model


def _run(model, feeds: dict[str, np.ndarray], failure: str) -> list[np.ndarray]:
    """The runtime's outputs for a file or an in-memory ModelProto; one-line ExportError on failure."""
    try:
        return get_runtime(PARITY_RUNTIME).open(model).run(feeds)
    except InferenceError as exc:
        raise ExportError(f"{failure}: {exc}") from None
