"""ONNX -> serialized TensorRT engine through the Python API (deploy.md §1, "Build / run").

`tensorrt` is imported only here and only when a build is asked for: it is an optional package
(GPU machines), and the rest of the exporter is decided and tested without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compressor.errors import EngineError, MissingToolError, first_line
from compressor.files import write_atomic

from .flags import BuildDecision
from .log import SparsityReport, sparsity_from_log
from .versions import TrtVersion, parse_version


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise MissingToolError("the Python package `tensorrt` is not installed") from None
    return tensorrt


def tensorrt_version() -> TrtVersion:
    return parse_version(import_tensorrt().__version__)


@dataclass(frozen=True)
class EngineResult:
    engine: Path
    decision: BuildDecision
    sparsity: SparsityReport
    log: str
    timing_cache: Path | None


def _flag_bits(enum, names) -> int:
    bits = 0
    for name in names:
        bits |= 1 << int(getattr(enum, name))
    return bits


def build_engine(onnx: Path, engine: Path, decision: BuildDecision, *, profiles: dict | None = None,
                 workspace_mb: int | None = None, timing_cache: Path | None = None) -> EngineResult:
    trt = import_tensorrt()
    lines: list[str] = []

    class _Capture(trt.ILogger):
        """Keeps the whole verbose log: the (Sparsity) lines are only logged at that level."""

        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            lines.append(f"[{getattr(severity, 'name', severity)}] {msg}")

    logger = _Capture()
    builder = trt.Builder(logger)
    network = builder.create_network(_flag_bits(trt.NetworkDefinitionCreationFlag, decision.network_flags))
    parser = trt.OnnxParser(network, logger)
    # from the path, so weights in external data files next to the model are found
    if not parser.parse_from_file(str(onnx)):
        errors = [first_line(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        raise EngineError(f"TensorRT could not parse {onnx.name}: " + ("; ".join(errors) or "no reason given"))

    config = builder.create_builder_config()
    for name in decision.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if profiles:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profiles.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
    if timing_cache is not None:
        cached = timing_cache.read_bytes() if timing_cache.is_file() else b""
        # a cache from another device or version is refused rather than silently mixed in
        config.set_timing_cache(config.create_timing_cache(cached), False)

    serialized = builder.build_serialized_network(network, config)
    log = "\n".join(lines)
    if serialized is None:
        errors = [line for line in lines if line.startswith(("[ERROR]", "[INTERNAL_ERROR]"))]
        raise EngineError(f"TensorRT could not build {onnx.name}: " + (first_line(errors[-1]) if errors else "no reason logged"))
    write_atomic(engine, bytes(serialized))
    if timing_cache is not None:
        write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    return EngineResult(engine, decision, sparsity_from_log(log), log, timing_cache)
