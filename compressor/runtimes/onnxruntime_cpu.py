"""onnxruntime on the CPU, registered as "onnxruntime-cpu": the one place that makes an
`onnxruntime.InferenceSession`.

Sessions run with every graph optimisation on, as a deployment would.
"""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from ..errors import InferenceError
from .base import RUNTIMES, ModelSource, Runtime, RuntimeSession
from .ort_errors import ort_error_message


def onnxruntime_session(source, threads: int | None = None, providers: Sequence[str] = ("CPUExecutionProvider",),
                        provider_options: Sequence[dict] | None = None) -> ort.InferenceSession:
    """The bare onnxruntime session for a file path or serialised bytes, on the CPU unless other
    execution providers are named (onnxruntime_gpu.py); onnxruntime's own exceptions."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: ORT warns about every unused initializer
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    # Idle intra-op threads spin-wait after a run by default: with several sessions timed in turn
    # (dense, pruned, a same-file control) one session's spinning threads take the cores from the
    # next one's run, and two sessions of one file read up to 19% apart on 2 cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(source if isinstance(source, bytes) else str(source), options,
                                providers=list(providers), provider_options=list(provider_options) if provider_options else None)


@RUNTIMES.register("onnxruntime-cpu")
class OnnxruntimeCPU(Runtime):
    def open(self, model: ModelSource) -> RuntimeSession:
        copy = None
        try:
            source = model
            if isinstance(model, onnx.ModelProto):
                if model.ByteSize() <= onnx.checker.MAXIMUM_PROTOBUF:
                    source = model.SerializeToString()
                else:  # protobuf cannot serialise past 2 GiB: through a file with external data
                    copy = tempfile.TemporaryDirectory()
                    source = Path(copy.name) / "model.onnx"
                    onnx.save_model(model, str(source), save_as_external_data=True, location="model.onnx.data")
            return _Session(onnxruntime_session(source, self.threads), copy)
        except Exception as exc:  # onnxruntime raises its own exception types
            if copy is not None:
                copy.cleanup()
            raise InferenceError(ort_error_message(exc)) from None

    def describe(self) -> dict:
        return {"device": "CPU", "device_name": cpu_name(), "versions": {"onnxruntime": ort.__version__},
                "threads": self.threads}

    def channel_multiple(self) -> tuple[int, str]:
        # onnxruntime's CPU convolutions run in a blocked channel layout (MLAS "NCHWc") whose block is
        # 16 channels on AVX-512F and 8 on AVX2; counts off the block leave those kernels (measured:
        # the YOLO-style net at 50% of multiply-adds, 1.73x faster at round-to 16, 1.38x at 8;
        # docs/benchmarks.md, 2026-12-07).
        if cpu_has("AVX512F"):
            return 16, "onnxruntime-cpu on an AVX-512 CPU computes convolutions in blocks of 16 channels"
        return 8, "onnxruntime-cpu on this CPU (no AVX-512) computes convolutions in blocks of 8 channels"


class _Session(RuntimeSession):
    def __init__(self, session: ort.InferenceSession, copy: tempfile.TemporaryDirectory | None = None):
        self._session = session
        self._copy = copy  # the temporary file a large ModelProto was loaded from: removed with the session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        try:
            return self._session.run(None if outputs is None else list(outputs), feeds)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InferenceError(ort_error_message(exc)) from None


def cpu_has(feature: str) -> bool:
    """Whether this CPU has an instruction-set extension, as numpy's dispatcher detected it."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get(feature, False))


def cpu_name() -> str:
    """The processor's model name, e.g. 'Intel(R) Xeon(R) ...'; '' when the platform does not say."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
