"""Engines through the `trtexec` program, for machines that have it but not the Python package
(Jetson). The command line comes from the same BuildDecision as the Python build (deploy.md §1, §4).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from compressor.errors import EngineError, MissingToolError, first_line

from .flags import BuildDecision
from .log import SparsityReport, TrtexecSummary, sparsity_from_log, summary_from_trtexec
from .versions import TrtVersion, version_from_trtexec

# trtexec's spelling of each builder flag (its --help); 11.x removed --fp16/--int8 with the flags
_OPTIONS = {"FP16": "--fp16", "INT8": "--int8", "SPARSE_WEIGHTS": "--sparsity=enable"}


def find_trtexec(path: str | Path | None = None) -> Path:
    """The trtexec to run: `path` when given, else the one on PATH."""
    if path is not None:
        found = Path(path)
        if not found.is_file():
            raise MissingToolError(f"--trtexec {path}: no such file")
        return found
    on_path = shutil.which("trtexec")
    if on_path is None:
        raise MissingToolError("the `trtexec` binary is not on PATH")
    return Path(on_path)


def trtexec_version(binary: Path) -> TrtVersion:
    # every start prints the banner with the version, --help included, without touching a GPU
    try:
        done = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60)
    except OSError as exc:  # not executable, wrong architecture, ...
        raise MissingToolError(f"cannot run {binary}: {exc.strerror or type(exc).__name__}") from None
    except subprocess.TimeoutExpired:
        raise EngineError(f"{binary} --help did not answer within 60 s") from None
    return version_from_trtexec(done.stdout + done.stderr)


def _dims(shape) -> str:
    return "x".join(map(str, shape))


def trtexec_argv(binary: Path, onnx: Path, engine: Path, decision: BuildDecision, *,
                 profiles: dict | None = None, workspace_mb: int | None = None,
                 timing_cache: Path | None = None, measure: bool = False) -> list[str]:
    argv = [str(binary), f"--onnx={onnx}", f"--saveEngine={engine}"]
    unknown = [flag for flag in decision.builder_flags if flag not in _OPTIONS]
    if unknown:
        raise EngineError(f"trtexec has no option for builder flag {unknown[0]}")
    argv += [_OPTIONS[flag] for flag in decision.builder_flags]
    if "STRONGLY_TYPED" in decision.network_flags and not decision.version.strongly_typed_only:
        argv.append("--stronglyTyped")  # a no-op in 11.x, where every network is
    if profiles:
        static = all(lo == hi for lo, _, hi in profiles.values())
        if static:
            argv.append("--shapes=" + ",".join(f"{name}:{_dims(opt)}" for name, (_, opt, _) in profiles.items()))
        else:
            for option, index in (("--minShapes", 0), ("--optShapes", 1), ("--maxShapes", 2)):
                argv.append(f"{option}=" + ",".join(f"{name}:{_dims(p[index])}" for name, p in profiles.items()))
    if workspace_mb is not None:
        argv.append(f"--memPoolSize=workspace:{workspace_mb}M")  # --workspace is gone since 8.x
    if timing_cache is not None:
        argv.append(f"--timingCacheFile={timing_cache}")
    if not measure:
        argv.append("--skipInference")
    argv.append("--verbose")  # the (Sparsity) lines are logged at verbose level only
    return argv


@dataclass(frozen=True)
class TrtexecRun:
    argv: list[str]
    sparsity: SparsityReport
    summary: TrtexecSummary | None
    output: str


def run_trtexec(argv: list[str], timeout_s: float = 3600) -> TrtexecRun:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise EngineError(f"trtexec did not finish within {timeout_s:.0f} s") from None
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise EngineError(f"trtexec failed (exit {done.returncode}): {_last_error(output)}")
    return TrtexecRun(argv, sparsity_from_log(output), summary_from_trtexec(output), output)


def _last_error(output: str) -> str:
    """trtexec's reason: its last error line ("[E] ..."), else its last line."""
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "[E]" in line]
    picked = (errors or lines or ["no output"])[-1]
    return first_line(picked.split("[E]", 1)[-1].strip())
