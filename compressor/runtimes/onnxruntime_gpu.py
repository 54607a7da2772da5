"""onnxruntime on an NVIDIA GPU: "onnxruntime-cuda" (CUDA execution provider) and "onnxruntime-trt"
(TensorRT execution provider, falling back to CUDA for nodes it does not take), per deploy.md §5.

They need the `onnxruntime-gpu` package (the `[gpu]` extra, which replaces the CPU-only
`onnxruntime`); without it, or without a visible GPU, opening a model is one line naming exactly
the missing piece. Inputs are copied to the device once and bound with IOBinding, with outputs left
on the device, so a timed `run` measures the model and not two host-device copies per call.
TensorRT EP engines are cached next to the model (the first session builds them, which takes
minutes); `trt_sparsity_enable` asks TensorRT for 2:4 kernels. Outputs come back to the host on
every run (the protocol's `run` returns arrays), which a latency figure therefore includes.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from ..errors import InferenceError, MissingToolError
from .base import RUNTIMES, ModelSource, Runtime, RuntimeSession
from .cuda_timing import cuda_device_name
from .onnxruntime_cpu import onnxruntime_session
from .ort_errors import ort_error_message

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"


def missing_provider(provider: str, available: Sequence[str]) -> str | None:
    """Why `provider` cannot run here, in one line naming the missing piece; None when it can."""
    if provider in available:
        return None
    if CUDA not in available:
        return (f"onnxruntime {ort.__version__} here has no {provider} (providers: {', '.join(available)}): install the "
                "GPU build, `pip uninstall onnxruntime && pip install 'onnx-compressor[gpu]'` (onnxruntime-gpu, CUDA 12)")
    return (f"onnxruntime {ort.__version__} has CUDA but no {provider}: it needs TensorRT's libraries (libnvinfer) on the "
            "library path, of the version that onnxruntime build was made for (deploy.md §1: ORT >= 1.27 for TensorRT 11)")


class _GpuRuntime(Runtime):
    providers: tuple[str, ...] = ()
    device_kind = "GPU"

    def provider_options(self, cache_dir: Path) -> list[dict]:
        return [{} for _ in self.providers]

    def open(self, model: ModelSource) -> RuntimeSession:
        reason = missing_provider(self.providers[0], ort.get_available_providers())
        if reason is not None:
            raise MissingToolError(reason)
        cache = tempfile.TemporaryDirectory()
        try:
            source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
            session = onnxruntime_session(source, self.threads, self.providers, self.provider_options(Path(cache.name)))
        except Exception as exc:  # onnxruntime raises its own exception types
            cache.cleanup()
            raise InferenceError(ort_error_message(exc)) from None
        return _BoundSession(session, cache)

    def describe(self) -> dict:
        # onnxruntime does not report the device's name; PyTorch does, where it sees the GPU
        return {"device": "GPU", "device_name": cuda_device_name(), "versions": {"onnxruntime": ort.__version__},
                "threads": self.threads}


@RUNTIMES.register("onnxruntime-cuda")
class OnnxruntimeCUDA(_GpuRuntime):
    providers = (CUDA, "CPUExecutionProvider")


@dataclass(frozen=True)
class TensorRTProviderOptions:
    fp16: bool = True  # trt_fp16_enable (TensorRT 10's FP16 flag)
    sparsity: bool = True  # trt_sparsity_enable: SPARSE_WEIGHTS, 2:4 kernels where TensorRT finds them faster


@RUNTIMES.register("onnxruntime-trt")
class OnnxruntimeTensorRT(_GpuRuntime):
    providers = (TENSORRT, CUDA, "CPUExecutionProvider")
    Options = TensorRTProviderOptions

    def provider_options(self, cache_dir: Path) -> list[dict]:
        trt = {"trt_fp16_enable": self.options.fp16, "trt_sparsity_enable": self.options.sparsity,
               "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir),
               "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache_dir)}
        return [trt, {}, {}]


class _BoundSession(RuntimeSession):
    """Inputs copied to the GPU once per distinct feed, outputs kept on the device until asked for."""

    def __init__(self, session: ort.InferenceSession, cache: tempfile.TemporaryDirectory):
        self._session, self._cache = session, cache
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self._bound: list[np.ndarray] = []  # the arrays now on the device (held, so identity stays meaningful)
        self._binding = session.io_binding()

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        try:
            arrays = [feeds[n] for n in self.input_names]
            if len(arrays) != len(self._bound) or any(a is not b for a, b in zip(arrays, self._bound)):
                # a new feed: one copy to the device, then reused by every timed run
                self._binding.clear_binding_inputs()
                self._binding.clear_binding_outputs()
                for name in self.input_names:
                    self._binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(feeds[name], "cuda", 0))
                for name in self.output_names:
                    self._binding.bind_output(name, "cuda", 0)
                self._bound = arrays
            self._session.run_with_iobinding(self._binding)
            values = self._binding.get_outputs()
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InferenceError(ort_error_message(exc)) from None
        wanted = self.output_names if outputs is None else list(outputs)
        by_name = dict(zip(self.output_names, values))
        return [by_name[name].numpy() for name in wanted]
