"""TensorRT as a runtime ("tensorrt", short name "trt"): the ONNX built into an engine (engine.py,
the same settings as `compress engine`) and run through the TensorRT Python API, so `compress
bench --runtime trt` and the pipeline's `--runtime trt` time what deploys.

An engine is built per distinct set of input shapes, static (min = opt = max, what latency work
wants: deploy.md §1), the first time a feed of those shapes arrives; all sessions of one runtime
share one timing cache, so a dense file and its pruned copy get the same tactic timings (deploy.md
§6.6). Buffers are PyTorch CUDA tensors (their `data_ptr()` bound with `set_tensor_address`), the
work goes to PyTorch's current stream with `execute_async_v3`, and a timed run is the GPU time
between two CUDA events recorded around it (deploy.md §6.3). Outputs come back to the host only in
`run`. Needs the `tensorrt` package and a CUDA build of PyTorch; the trtexec route builds engines
but cannot run them in-process (`compress engine --trtexec ... --measure` times them instead).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from compressor.errors import EngineError, InferenceError, MissingToolError
from compressor.runtimes import RUNTIMES, Runtime, RuntimeSession
from compressor.runtimes.base import ModelSource
from compressor.runtimes.cuda_timing import CUDA_EVENTS, cuda_device_name, event_timer

from .build import import_tensorrt
from .engine import make_engine
from .flags import PRECISIONS

# trt.DataType member names -> torch dtype names (the buffers' element types must match the engine's)
TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
                "INT64": "int64", "BOOL": "bool", "UINT8": "uint8"}


@dataclass(frozen=True)
class TensorRTOptions:
    precision: str = field(default="fp16", metadata={"choices": PRECISIONS})
    sparse: str = field(default="auto", metadata={"choices": ("auto", "on", "off")})  # SPARSE_WEIGHTS
    workspace_mb: int = 0  # 0: TensorRT's default
    timing_cache: str = ""  # a file shared across runs; "": one per runtime, in a temporary folder


@dataclass(frozen=True)
class IOTensor:
    name: str
    is_input: bool
    dtype: str  # torch dtype name


def io_tensors(engine, trt) -> list[IOTensor]:
    """The engine's named I/O tensors (TensorRT 10+: `num_io_tensors`, `get_tensor_name/mode/dtype`)."""
    tensors = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        kind = engine.get_tensor_dtype(name)
        kind_name = getattr(kind, "name", str(kind).rsplit(".", 1)[-1])
        if kind_name not in TORCH_DTYPES:
            raise EngineError(f"engine tensor {name!r} has type {kind_name}, which this runtime cannot bind")
        tensors.append(IOTensor(name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT, TORCH_DTYPES[kind_name]))
    return tensors


def shape_key(feeds: Mapping[str, np.ndarray], names: Sequence[str]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(d) for d in np.shape(feeds[n])) for n in names)


@RUNTIMES.register("tensorrt")
class TensorRTRuntime(Runtime):
    device_kind = "GPU"
    Options = TensorRTOptions

    def __init__(self, threads=None, options=None):
        super().__init__(threads, options)
        self._cache_dir = tempfile.TemporaryDirectory(prefix="trt-runtime-")
        self.timing_cache = Path(self.options.timing_cache) if self.options.timing_cache else \
            Path(self._cache_dir.name) / "timing.cache"

    def open(self, model: ModelSource) -> RuntimeSession:
        try:
            trt = import_tensorrt()
        except MissingToolError as missing:
            raise MissingToolError(f"the {self.name} runtime runs engines through TensorRT's Python API, and {missing}: "
                                   "pip install 'onnx-compressor[tensorrt]' on a machine with an NVIDIA GPU") from None
        import torch

        if not torch.cuda.is_available():
            raise MissingToolError("the tensorrt runtime keeps its buffers in PyTorch CUDA tensors: it needs a GPU and "
                                   f"a CUDA build of PyTorch (this PyTorch {torch.__version__} sees none)")
        path = _as_file(model, Path(self._cache_dir.name))
        graph = onnx.load(str(path), load_external_data=False).graph
        weights = {t.name for t in graph.initializer}  # old exporters list weights as inputs too
        return _EngineSession(self, trt, path, [i.name for i in graph.input if i.name not in weights],
                              [o.name for o in graph.output])

    def build(self, path: Path, shapes: dict[str, list[int]], engine_path: Path):
        sparse = {"auto": None, "on": True, "off": False}[self.options.sparse]
        return make_engine(path, engine_path, precision=self.options.precision, sparse=sparse,
                           workspace_mb=self.options.workspace_mb or None, timing_cache=self.timing_cache,
                           input_shapes=shapes)

    def describe(self) -> dict:
        versions = {}
        try:
            versions["tensorrt"] = import_tensorrt().__version__
        except MissingToolError:
            pass
        return {"device": "GPU", "device_name": cuda_device_name(), "versions": versions, "threads": self.threads,
                "precision": self.options.precision}


RUNTIMES.alias("trt", "tensorrt")


def _as_file(model: ModelSource, folder: Path) -> Path:
    if isinstance(model, (bytes, onnx.ModelProto)):
        path = Path(tempfile.mkdtemp(dir=folder)) / "model.onnx"
        path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
        return path
    return Path(model)


class _EngineSession(RuntimeSession):
    clock = CUDA_EVENTS

    def __init__(self, runtime: TensorRTRuntime, trt, path: Path, graph_inputs: list[str], graph_outputs: list[str]):
        self._runtime, self._trt, self._path = runtime, trt, path
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._engines: dict = {}  # shape key -> (engine, context, io, outcome)
        self._current = None
        self._bound: list[np.ndarray] = []
        self._buffers: dict = {}
        self.input_names = list(graph_inputs)
        self.output_names = list(graph_outputs)

    def details(self) -> dict:
        if self._current is None:
            return {}
        outcome = self._current[3]
        d, s = outcome.decision, outcome.sparsity
        return {"engine": {"tensorrt": str(d.version), "precision": d.precision, "builder_flags": list(d.builder_flags),
                           "built_from": outcome.built_from.name if getattr(outcome, "built_from", None) else None,
                           "sparse_eligible": list(s.eligible), "sparse_picked": list(s.picked)}}

    def _engine_for(self, feeds: Mapping[str, np.ndarray]):
        key = shape_key(feeds, self.input_names)
        if key not in self._engines:
            shapes = {name: list(shape) for name, shape in zip(self.input_names, key)}
            engine_path = Path(tempfile.mkdtemp(dir=self._runtime._cache_dir.name)) / "model.engine"
            outcome = self._runtime.build(self._path, shapes, engine_path)
            engine = self._trt.Runtime(self._logger).deserialize_cuda_engine(engine_path.read_bytes())
            if engine is None:
                raise EngineError(f"TensorRT could not load the engine it built for {self._path.name}")
            context = engine.create_execution_context()
            self._engines[key] = (engine, context, io_tensors(engine, self._trt), outcome)
        return self._engines[key]

    def _bind(self, feeds: Mapping[str, np.ndarray]) -> None:
        import torch

        arrays = [feeds[n] for n in self.input_names]
        if self._current is not None and len(arrays) == len(self._bound) and all(a is b for a, b in zip(arrays, self._bound)):
            return
        self._current = self._engine_for(feeds)
        engine, context, io, _ = self._current
        buffers = {}
        for tensor in io:
            if tensor.is_input:
                value = torch.from_numpy(np.ascontiguousarray(feeds[tensor.name])).to("cuda")
                value = value.to(getattr(torch, tensor.dtype)).contiguous()
                context.set_input_shape(tensor.name, tuple(value.shape))
                buffers[tensor.name] = value
        for tensor in io:
            if not tensor.is_input:
                shape = tuple(context.get_tensor_shape(tensor.name))
                buffers[tensor.name] = torch.empty(shape, dtype=getattr(torch, tensor.dtype), device="cuda")
        for name, value in buffers.items():
            context.set_tensor_address(name, value.data_ptr())
        self._buffers, self._bound = buffers, arrays  # held: TensorRT reads these addresses

    def _execute(self) -> None:
        import torch

        stream = torch.cuda.current_stream().cuda_stream
        if not self._current[1].execute_async_v3(stream):
            raise InferenceError(f"TensorRT could not run {self._path.name}")

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        import torch

        self._bind(feeds)
        self._execute()
        torch.cuda.current_stream().synchronize()
        wanted = self.output_names if outputs is None else list(outputs)
        return [self._buffers[name].float().cpu().numpy() if self._buffers[name].is_floating_point()
                else self._buffers[name].cpu().numpy() for name in wanted]

    def timer(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], int]:
        self._bind(feeds)
        # the same arrays on every call: binding again is an identity check, no copy
        return event_timer(self._execute, before=lambda: self._bind(feeds))
