"""The project's own importer as a runtime: "torch-cpu" (float32), and "torch-cuda" (FP16) /
"torch-cuda-bf16" on an NVIDIA GPU.

The ONNX file is imported into PyTorch (compressor/onnx_import) and run in inference mode, so a
pruned model can be timed where neither onnxruntime-gpu nor TensorRT is installed. Inputs are
copied to the device once per distinct feed. Options (`--runtime-option KEY=VALUE`):

- `compile` (all): run the module through `torch.compile` in that mode (off by default).
- `timing` (GPU): "cuda-events" (default) times the kernels of one run with CUDA events recorded
  on the stream around it (deploy.md §6.3: GPU compute time, no copies); "host" times `run` on the
  host clock after a device synchronize, copying the outputs back (host latency without H2D).
- `cuda_graph` (GPU): capture one run in a CUDA graph (on a side stream, after ordinary warm-up
  runs, once the input addresses are fixed) and replay it, so launch overhead does not hide the
  kernel time (deploy.md §6.3).
- `semi_structured` (GPU): 2:4-pruned Gemm/MatMul weights run on PyTorch's semi-structured sparse
  kernels (semi_structured.py); which layers did, and why the others did not, is in `details()`.

A model with an untrainable tail (NMS, loops) does not run here: its outputs would not be the
graph's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from ..errors import InferenceError, MissingToolError
from ..onnx_import import load_onnx, load_onnx_proto
from ..onnx_import.tensors import torch_to_numpy
from . import semi_structured as sparse_kernels
from .base import HOST_CLOCK, RUNTIMES, ModelSource, Runtime, RuntimeSession
from .cuda_timing import CUDA_EVENTS, cuda_device_name, event_timer

COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
GRAPH_WARMUP_RUNS = 3  # ordinary runs on the capture stream before capturing (lazy init, autotuning)


@dataclass(frozen=True)
class TorchOptions:
    compile: str = field(default="off", metadata={"choices": COMPILE_MODES})


@dataclass(frozen=True)
class TorchCUDAOptions(TorchOptions):
    timing: str = field(default="cuda-events", metadata={"choices": ("cuda-events", "host")})
    cuda_graph: bool = False
    semi_structured: bool = False
    sparse_backend: str = field(default="auto", metadata={"choices": ("auto", *sparse_kernels.BACKENDS)})


class _TorchRuntime(Runtime):
    device = "cpu"
    dtype = torch.float32
    Options = TorchOptions

    def open(self, model: ModelSource) -> RuntimeSession:
        self._check_device()
        module = _import(model)
        if module.tail is not None:
            raise InferenceError(f"{self.name} cannot run the model's tail ({', '.join(module.tail.ops)}): "
                                 "use an onnxruntime runtime")
        module = module.eval().to(self.device)
        if self.dtype != torch.float32:
            module = module.to(self.dtype)
        details: dict = {}
        self._prepare(module, details)
        runner = module
        if self.options.compile != "off":
            runner = torch.compile(module, mode=self.options.compile)
            details["compile"] = self.options.compile
        return self._session(module, runner, details)

    def _check_device(self) -> None:
        pass

    def _prepare(self, module, details: dict) -> None:
        """Changes to the imported module before it runs (none on the CPU)."""

    def _session(self, module, runner, details: dict) -> RuntimeSession:
        return _TorchSession(module, runner, self.device, self.dtype, self.threads, details)

    def describe(self) -> dict:
        return {"device": "CPU", "device_name": "", "versions": {"torch": torch.__version__}, "threads": self.threads}


@RUNTIMES.register("torch-cpu")
class TorchCPU(_TorchRuntime):
    pass


@RUNTIMES.register("torch-cuda")
class TorchCUDA(_TorchRuntime):
    device, dtype = "cuda", torch.float16
    device_kind = "GPU"
    Options = TorchCUDAOptions

    def _check_device(self) -> None:
        if not torch.cuda.is_available():
            raise MissingToolError(f"{self.name} needs a CUDA GPU and a CUDA build of PyTorch; this PyTorch "
                                   f"{torch.__version__} sees none (torch.cuda.is_available() is False)")
        if self.options.semi_structured:
            capability = torch.cuda.get_device_capability(0)
            if capability < (8, 0):
                raise MissingToolError(f"semi_structured needs compute capability 8.0 or newer; "
                                       f"{torch.cuda.get_device_name(0)} is {capability[0]}.{capability[1]}")
            if self.options.sparse_backend == "cusparselt" and not torch.backends.cusparselt.is_available():
                raise MissingToolError(f"PyTorch {torch.__version__} here was built without cuSPARSELt: "
                                       "use --runtime-option sparse_backend=cutlass")

    def _prepare(self, module, details: dict) -> None:
        if not self.options.semi_structured:
            return
        backend = sparse_kernels.resolve_backend(self.options.sparse_backend)
        choices = sparse_kernels.plan(module, self.dtype, backend)
        count = sparse_kernels.apply(module, choices, self.dtype, backend)
        details["semi_structured"] = {"backend": backend, "sparse_layers": count,
                                      "layers": [c.to_dict() for c in choices]}

    def _session(self, module, runner, details: dict) -> RuntimeSession:
        if self.options.cuda_graph:
            details["cuda_graph"] = True
        return _CudaSession(module, runner, self.device, self.dtype, self.threads, details,
                            graph=self.options.cuda_graph, events=self.options.timing == "cuda-events")

    def describe(self) -> dict:
        name = cuda_device_name()
        versions = {"torch": torch.__version__}
        if torch.version.cuda:
            versions["cuda"] = torch.version.cuda
        return {"device": "GPU", "device_name": name, "versions": versions, "threads": self.threads,
                "precision": str(self.dtype).removeprefix("torch.")}


@RUNTIMES.register("torch-cuda-bf16")
class TorchCUDABF16(TorchCUDA):
    dtype = torch.bfloat16


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
    def __init__(self, module, runner, device: str, dtype: torch.dtype, threads: int | None, details: dict):
        self.module, self.runner, self.device, self.dtype, self.threads = module, runner, device, dtype, threads
        self._details = details
        self.input_names = list(module.input_names)
        self.output_names = list(module.output_names)
        self._bound: list[np.ndarray] = []  # the arrays whose device copies are held below
        self._tensors: list[torch.Tensor] = []

    def details(self) -> dict:
        return dict(self._details)

    def _bind(self, feeds: Mapping[str, np.ndarray]) -> bool:
        """Device copies of `feeds` (once per distinct feed); True when they changed."""
        arrays = [feeds[n] for n in self.input_names]
        if len(arrays) == len(self._bound) and all(a is b for a, b in zip(arrays, self._bound)):
            return False
        tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays]
        self._tensors = [t.to(self.dtype) if t.is_floating_point() else t for t in tensors]
        self._bound = arrays
        return True

    def _forward(self):
        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                return self.runner(*self._tensors)
        except Exception as exc:  # a node's failure, named by the module
            raise InferenceError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        finally:
            torch.set_num_threads(previous)

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        self._bind(feeds)
        result = self._forward()
        if self.device == "cuda":
            torch.cuda.synchronize()
        values = result if isinstance(result, (tuple, list)) else (result,)
        by_name = {name: torch_to_numpy(v.float() if v.is_floating_point() else v) for name, v in zip(self.output_names, values)}
        return [by_name[name] for name in (self.output_names if outputs is None else outputs)]


class _CudaSession(_TorchSession):
    def __init__(self, *args, graph: bool, events: bool):
        super().__init__(*args)
        self._use_graph = graph
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_outputs = None
        self.clock = CUDA_EVENTS if events else HOST_CLOCK

    def _bind(self, feeds: Mapping[str, np.ndarray]) -> bool:
        changed = super()._bind(feeds)
        if changed:
            self._graph = None  # captured for the previous inputs' addresses
        return changed

    def _forward(self):
        if not self._use_graph:
            return super()._forward()
        if self._graph is None:
            self._capture()
        self._graph.replay()
        return self._graph_outputs

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP_RUNS):
                super()._forward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._graph_outputs = super()._forward()
        except InferenceError as exc:
            raise InferenceError(f"cannot capture a CUDA graph of this model: {exc}") from None
        self._graph = graph

    def timer(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], int]:
        if self.clock == HOST_CLOCK:
            return super().timer(feeds)
        self._bind(feeds)
        # the same arrays on every call: binding again is an identity check, no copy
        return event_timer(self._forward, before=lambda: self._bind(feeds))
