"""Does the exported file compute what the module computes? Checked with onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from compressor.errors import ExportError
from compressor.onnx_import.inputs import random_inputs
from compressor.onnx_import.tensors import torch_to_numpy


@dataclass
class ParityResult:
    max_relative_error: float  # max over outputs of max|ort - torch| / max|torch|
    per_output: dict[str, float] = field(default_factory=dict)
    input_shapes: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"max_relative_error": self.max_relative_error, "per_output": self.per_output, "input_shapes": self.input_shapes}


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    if want.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(want))), 1e-12)
    return float(np.max(np.abs(got - want))) / scale


def onnxruntime_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT warns about every unused initializer
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_parity(module, onnx_path, inputs: list[torch.Tensor] | None = None, input_shapes=None, seed: int = 0) -> ParityResult:
    """Run the file in onnxruntime and the module in torch on the same inputs; compare."""
    if inputs is None:
        inputs = random_inputs(module, input_shapes, batch=2, seed=seed)  # batch 2 exercises dynamic batch
    try:
        session = onnxruntime_session(Path(onnx_path))
        feeds = {name: torch_to_numpy(t) for name, t in zip(module.input_names, inputs)}
        ort_outputs = session.run(None, feeds)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(f"onnxruntime cannot run {onnx_path}: {str(exc).strip().splitlines()[0]}") from None
    with torch.no_grad():
        torch_outputs = module(*inputs)
    torch_outputs = torch_outputs if isinstance(torch_outputs, tuple) else (torch_outputs,)
    per_output = {
        name: relative_error(got, torch_to_numpy(want))
        for name, got, want in zip(module.output_names, ort_outputs, torch_outputs)
    }
    return ParityResult(max(per_output.values(), default=0.0), per_output, {n: list(t.shape) for n, t in zip(module.input_names, inputs)})
