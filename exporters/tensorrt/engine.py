"""One engine build, by whichever route the machine has: the Python package `tensorrt`, else the
`trtexec` binary (asked for with a path, or found on PATH). The settings are decided once
(flags.py) from the installed TensorRT's version and the ONNX's own types.

FP16 on TensorRT 11 needs float16 weights in the file, so a float32 ONNX is first written as a
float16 copy, `<engine stem>.fp16.onnx` beside the engine (exporters.fp16), and built from that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compressor.errors import CompressorError, ConfigError, EngineError, MissingToolError
from exporters.fp16 import write_float16

from .build import build_engine, import_tensorrt, tensorrt_version
from .flags import AUTOCAST, BuildDecision, decide
from .log import SparsityReport, TrtexecSummary
from .model import ModelFacts, read_facts
from .profiles import profile_shapes
from .trtexec import find_trtexec, run_trtexec, trtexec_argv, trtexec_version
from .versions import TrtVersion, check_supported

ENGINE_SUFFIX = ".engine"
FP16_SUFFIX = ".fp16.onnx"


@dataclass(frozen=True)
class EngineOutcome:
    engine: Path
    route: str                        # "python" or "trtexec"
    decision: BuildDecision
    sparsity: SparsityReport
    summary: TrtexecSummary | None    # trtexec's latency summary, when it measured
    built_from: Path                  # the ONNX given, or its float16 copy (TensorRT 11, FP16)


def choose_route(trtexec: str | Path | None = None) -> tuple[str, Path | None]:
    """("python", None) or ("trtexec", its path); an explicit trtexec path wins over the package."""
    if trtexec is not None:
        return "trtexec", find_trtexec(trtexec)
    try:
        import_tensorrt()
        return "python", None
    except MissingToolError as no_package:
        try:
            return "trtexec", find_trtexec()
        except MissingToolError:
            raise MissingToolError(f"{no_package} and the `trtexec` binary is not on PATH: install TensorRT "
                                   "10 or 11 (pip install tensorrt) or pass --trtexec PATH") from None


def make_engine(onnx: Path, engine: Path | None = None, *, precision: str = "fp16", sparse: bool | None = None,
                workspace_mb: int | None = None, timing_cache: Path | None = None,
                trtexec: str | Path | None = None, input_shapes: dict[str, list[int]] | None = None,
                max_batch: int = 1, measure: bool = False) -> EngineOutcome:
    """`measure`: let trtexec time the engine after building it (its summary in the outcome).
    On TensorRT 11 with fp16 and float32 weights, the engine is built from a float16 copy written
    beside it (`built_from` in the outcome)."""
    onnx = Path(onnx)
    facts = read_facts(onnx)
    profiles = profile_shapes(facts.inputs, input_shapes, max_batch)
    engine = Path(engine) if engine is not None else onnx.with_suffix(ENGINE_SUFFIX)
    route, binary = choose_route(trtexec)
    if measure and route != "trtexec":
        raise ConfigError("--measure times the engine with trtexec: pass --trtexec PATH")
    version = tensorrt_version() if route == "python" else trtexec_version(binary)
    check_supported(version)  # before writing anything for it
    source, facts = _typed_source(onnx, engine, version, precision, facts)
    decision = decide(version, precision, facts, sparse)
    if route == "python":
        built = build_engine(source, engine, decision, profiles=profiles, workspace_mb=workspace_mb,
                             timing_cache=timing_cache)
        return EngineOutcome(built.engine, route, decision, built.sparsity, None, source)
    # trtexec writes the engine itself; a temporary name keeps a failed build from leaving half a file
    partial = engine.with_name(f".{engine.name}.partial")
    engine.parent.mkdir(parents=True, exist_ok=True)
    try:
        ran = run_trtexec(trtexec_argv(binary, source, partial, decision, profiles=profiles,
                                       workspace_mb=workspace_mb, timing_cache=timing_cache,
                                       measure=measure))
        partial.replace(engine)
    finally:
        partial.unlink(missing_ok=True)
    return EngineOutcome(engine, route, decision, ran.sparsity, ran.summary, source)


def fp16_copy_path(engine: Path) -> Path:
    """Where the float16 copy of the ONNX goes: beside the engine, named after it."""
    return engine.with_name(engine.stem + FP16_SUFFIX)


def _typed_source(onnx: Path, engine: Path, version: TrtVersion, precision: str, facts: ModelFacts
                  ) -> tuple[Path, ModelFacts]:
    """The ONNX to build from and its facts: on TensorRT 11 an FP16 engine from float32 weights
    is built from a float16 copy (the types decide there); everywhere else the file as given."""
    if not (version.strongly_typed_only and precision == "fp16" and facts.weight_float == "float32"
            and not facts.has_qdq):
        return onnx, facts
    copy = fp16_copy_path(engine)
    try:
        write_float16(onnx, copy, keep_io_types=True)
    except CompressorError as exc:
        raise EngineError(f"FP16 on TensorRT {version} needs float16 weights and {onnx.name} could not be "
                          f"converted ({exc}); {AUTOCAST}") from None
    return copy, read_facts(copy)
