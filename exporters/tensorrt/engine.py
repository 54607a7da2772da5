"""One engine build, by whichever route the machine has: the Python package `tensorrt`, else the
`trtexec` binary (asked for with a path, or found on PATH). The settings are decided once
(flags.py) from the installed TensorRT's version and the ONNX's own types.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compressor.errors import ConfigError, MissingToolError

from .build import build_engine, import_tensorrt, tensorrt_version
from .flags import BuildDecision, decide
from .log import SparsityReport, TrtexecSummary
from .model import read_facts
from .profiles import profile_shapes
from .trtexec import find_trtexec, run_trtexec, trtexec_argv, trtexec_version

ENGINE_SUFFIX = ".engine"


@dataclass(frozen=True)
class EngineOutcome:
    engine: Path
    route: str                        # "python" or "trtexec"
    decision: BuildDecision
    sparsity: SparsityReport
    summary: TrtexecSummary | None    # trtexec's latency summary, when it measured


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
    """`measure`: let trtexec time the engine after building it (its summary in the outcome)."""
    onnx = Path(onnx)
    facts = read_facts(onnx)
    profiles = profile_shapes(facts.inputs, input_shapes, max_batch)
    engine = Path(engine) if engine is not None else onnx.with_suffix(ENGINE_SUFFIX)
    route, binary = choose_route(trtexec)
    if measure and route != "trtexec":
        raise ConfigError("--measure times the engine with trtexec: pass --trtexec PATH")
    if route == "python":
        decision = decide(tensorrt_version(), precision, facts, sparse)
        built = build_engine(onnx, engine, decision, profiles=profiles, workspace_mb=workspace_mb,
                             timing_cache=timing_cache)
        return EngineOutcome(built.engine, route, decision, built.sparsity, None)
    decision = decide(trtexec_version(binary), precision, facts, sparse)
    # trtexec writes the engine itself; a temporary name keeps a failed build from leaving half a file
    partial = engine.with_name(f".{engine.name}.partial")
    engine.parent.mkdir(parents=True, exist_ok=True)
    try:
        ran = run_trtexec(trtexec_argv(binary, onnx, partial, decision, profiles=profiles,
                                       workspace_mb=workspace_mb, timing_cache=timing_cache,
                                       measure=measure))
        partial.replace(engine)
    finally:
        partial.unlink(missing_ok=True)
    return EngineOutcome(engine, route, decision, ran.sparsity, ran.summary)
