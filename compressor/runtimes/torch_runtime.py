"""The project's own importer as a runtime: "torch-cpu" (float32) and "torch-cuda" (FP16) /
"torch-cuda-bf16" on an NVIDIA GPU.

The ONNX file is imported into PyTorch (compressor/onnx_import) and run in inference mode, so a
pruned model can be timed where neither onnxruntime-gpu nor TensorRT is installed. On the GPU the
inputs are copied to the device once per distinct feed and each `run` waits for the device
(`torch.cuda.synchronize`), so host wall time covers the kernels; outputs come back to the host.
A model with an untrainable tail (NMS, loops) does not run here: its outputs would not be the
graph's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch

from ..errors import InferenceError, MissingToolError
from ..onnx_import import load_onnx, load_onnx_proto
from ..onnx_import.tensors import torch_to_numpy
from .base import RUNTIMES, ModelSource, Runtime, RuntimeSession


class _TorchRuntime(Runtime):
    device = "cpu"
    dtype = torch.float32

    def open(self, model: ModelSource) -> RuntimeSession:
        if self.device == "cuda" and not torch.cuda.is_available():
            raise MissingToolError(f"{self.name} needs a CUDA GPU and a CUDA build of PyTorch; this PyTorch "
                                   f"{torch.__version__} sees none (torch.cuda.is_available() is False)")
        module = _import(model)
        if module.tail is not None:
            raise InferenceError(f"{self.name} cannot run the model's tail ({', '.join(module.tail.ops)}): "
                                 "use an onnxruntime runtime")
        module = module.eval().to(self.device)
        if self.dtype != torch.float32:
            module = module.to(self.dtype)
        return _TorchSession(module, self.device, self.dtype, self.threads)

    def describe(self) -> dict:
        name = torch.cuda.get_device_name(0) if self.device == "cuda" and torch.cuda.is_available() else ""
        versions = {"torch": torch.__version__}
        if self.device == "cuda" and torch.version.cuda:
            versions["cuda"] = torch.version.cuda
        return {"device": "GPU" if self.device == "cuda" else "CPU", "device_name": name, "versions": versions,
                "threads": self.threads}


@RUNTIMES.register("torch-cpu")
class TorchCPU(_TorchRuntime):
    pass


@RUNTIMES.register("torch-cuda")
class TorchCUDA(_TorchRuntime):
    device, dtype = "cuda", torch.float16


@RUNTIMES.register("torch-cuda-bf16")
class TorchCUDABF16(_TorchRuntime):
    device, dtype = "cuda", torch.bfloat16


def _import(model: ModelSource):
    if isinstance(model, onnx.ModelProto):
        return load_onnx_proto(model)
    if isinstance(model, bytes):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(model)
            return load_onnx(path)
    return load_onnx(model)


class _TorchSession(RuntimeSession):
    def __init__(self, module, device: str, dtype: torch.dtype, threads: int | None):
        self.module, self.device, self.dtype, self.threads = module, device, dtype, threads
        self.input_names = list(module.input_names)
        self.output_names = list(module.output_names)
        self._bound: list[np.ndarray] = []  # the arrays whose device copies are held below
        self._tensors: list[torch.Tensor] = []

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        arrays = [feeds[n] for n in self.input_names]
        if len(arrays) != len(self._bound) or any(a is not b for a, b in zip(arrays, self._bound)):
            tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays]
            self._tensors = [t.to(self.dtype) if t.is_floating_point() else t for t in tensors]
            self._bound = arrays
        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                result = self.module(*self._tensors)
            if self.device == "cuda":
                torch.cuda.synchronize()
        except Exception as exc:  # a node's failure, named by the module
            raise InferenceError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        finally:
            torch.set_num_threads(previous)
        values = result if isinstance(result, (tuple, list)) else (result,)
        by_name = {name: torch_to_numpy(v.float() if v.is_floating_point() else v) for name, v in zip(self.output_names, values)}
        return [by_name[name] for name in (self.output_names if outputs is None else outputs)]
