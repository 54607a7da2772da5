"""The runtime protocol: a `Runtime` opens an ONNX model into a `RuntimeSession` that runs it on
numpy feeds. What the underlying library raises, on loading or running, comes out as a one-line
`InferenceError`.

Runtimes are registered by name in `RUNTIMES`; `get_runtime(name, options=...)` makes one. Each
runtime owns its typed options (`Runtime.Options`, a frozen dataclass; `--runtime-option KEY=VALUE`
on the command line). A session also says how it times one run (`RuntimeSession.timer`): host wall
time around `run` by default, CUDA events where the runtime can time the device itself.
"""

from __future__ import annotations

import importlib
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Union

import numpy as np
import onnx

from ..plugins import load_plugins
from ..registry import Registry
from ..typed_options import build_config, split_pairs

# A file path, the serialised bytes of a model, or the model itself.
ModelSource = Union[str, os.PathLike, bytes, onnx.ModelProto]


HOST_CLOCK = "host wall time"  # what a session times unless it says otherwise


class RuntimeSession(ABC):
    """One loaded model; `input_names` and `output_names` in the graph's order."""

    input_names: list[str]
    output_names: list[str]

    # what `timer` measures, for the figures' labels (deploy.md §6.5: say which time it is)
    clock: str = HOST_CLOCK

    @abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        """The outputs named in `outputs` (None: every graph output), in that order."""

    def timer(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], int]:
        """A call that runs the model once on `feeds` and returns how long that took, in ns.
        This default reads the host clock around `run`, outputs copied back included."""
        def timed() -> int:
            t0 = time.perf_counter_ns()
            self.run(feeds)
            return time.perf_counter_ns() - t0

        return timed

    def details(self) -> dict:
        """What the runtime did with this model beyond running it (e.g. layers given to sparse
        kernels), for reports; {} when nothing."""
        return {}



@dataclass(frozen=True)
class NoOptions:
    """A runtime without options of its own."""


class Runtime(ABC):
    name: str  # the registered name, set by RUNTIMES.register
    device_kind: str = "CPU"  # "CPU" or "GPU": which latency protocol's defaults apply (latency.py)
    Options: type = NoOptions  # the runtime's typed options (a frozen dataclass)

    def __init__(self, threads: int | None = None, options: Mapping[str, object] | None = None):
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads  # intra-op threads asked for; None: the library's default
        self.options = build_config(self.Options, dict(options or {}), f"runtime {self.name!r}", "--runtime-option")

    def options_dict(self) -> dict:
        return asdict(self.options)

    def channel_multiple(self) -> tuple[int, str]:
        """The channel count this runtime's kernels work in blocks of, and why: what `--round-to auto`
        rounds kept channel counts to. 8 unless a runtime knows better (half-precision tensor cores
        want multiples of 8; so do AVX2 CPU kernels)."""
        return 8, f"{self.name}: no channel block known, the common multiple of 8"

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


def get_runtime(name: str, *, threads: int | None = None, options: Mapping[str, object] | None = None) -> Runtime:
    """The runtime registered as `name` with its `options` (text values are converted to the
    option's type); an unknown name or option is a one-line ConfigError listing the known ones."""
    return RUNTIMES.get(name)(threads=threads, options=options)


def parse_runtime_options(values: Sequence[str]) -> dict[str, str]:
    """`--runtime-option KEY=VALUE` values as {key: text}; the runtime converts and checks them."""
    return dict(split_pairs(values, "--runtime-option", "cuda_graph=true"))
