"""The runtime protocol: a `Runtime` opens an ONNX model into a `RuntimeSession` that runs it on
numpy feeds. What the underlying library raises, on loading or running, comes out as a one-line
`InferenceError`.

Runtimes are registered by name in `RUNTIMES`; `get_runtime(name)` makes one.
"""

from __future__ import annotations

import importlib

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Union

import numpy as np
import onnx

from ..plugins import load_plugins
from ..registry import Registry

# A file path, the serialised bytes of a model, or the model itself.
ModelSource = Union[str, os.PathLike, bytes, onnx.ModelProto]


class RuntimeSession(ABC):
    """One loaded model; `input_names` and `output_names` in the graph's order."""

    input_names: list[str]
    output_names: list[str]

    @abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        """The outputs named in `outputs` (None: every graph output), in that order."""


class Runtime(ABC):
    name: str  # the registered name, set by RUNTIMES.register

    def __init__(self, threads: int | None = None):
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads  # intra-op threads asked for; None: the library's default

    @abstractmethod
    def open(self, model: ModelSource) -> RuntimeSession:
        """A session for `model`; InferenceError when the library refuses it."""

    @abstractmethod
    def describe(self) -> dict:
        """Where and with what the runtime runs, for reports:
        {"device": "CPU", "device_name": "Intel Xeon ..." ("" when unknown),
         "versions": {"onnxruntime": "1.31.1"}, "threads": 4 (None: the library's default)}."""


BUILTIN_RUNTIMES = ("onnxruntime_cpu", "onnxruntime_gpu", "torch_runtime")
# the short names `compress bench --runtime` also takes (issue #11)
ALIASES = {"ort-cpu": "onnxruntime-cpu", "ort-cuda": "onnxruntime-cuda", "ort-trt": "onnxruntime-trt"}


def _load_builtin() -> None:
    # discovery, not a dependency: the built-in runtimes register themselves on import, and
    # runtimes of packages built on the core (TensorRT in deploy/) come through entry points
    for module in BUILTIN_RUNTIMES:
        importlib.import_module(f"{__package__}.{module}")
    load_plugins()


RUNTIMES: Registry[type[Runtime]] = Registry("runtime", loader=_load_builtin, aliases=ALIASES)


def get_runtime(name: str, *, threads: int | None = None) -> Runtime:
    """The runtime registered as `name`; an unknown name is a one-line ConfigError listing the known ones."""
    return RUNTIMES.get(name)(threads=threads)
