"""TensorRT engines from the exported ONNX: settings per TensorRT generation (flags.py), a build
through the Python API (build.py) or trtexec (trtexec.py), and what the build log says (log.py)."""

from .build import EngineResult, build_engine, import_tensorrt, tensorrt_version
from .flags import PRECISIONS, BuildDecision, decide
from .log import SparsityReport, TimeStats, TrtexecSummary, sparsity_from_log, summary_from_trtexec
from .model import ModelFacts, facts_of, read_facts
from .profiles import profile_shapes
from .trtexec import TrtexecRun, find_trtexec, run_trtexec, trtexec_argv, trtexec_version
from .versions import TrtVersion, parse_version, version_from_trtexec

__all__ = [
    "EngineResult", "build_engine", "import_tensorrt", "tensorrt_version", "PRECISIONS", "BuildDecision", "decide",
    "SparsityReport", "TimeStats", "TrtexecSummary", "sparsity_from_log", "summary_from_trtexec", "ModelFacts",
    "facts_of", "read_facts", "profile_shapes", "TrtexecRun", "find_trtexec", "run_trtexec", "trtexec_argv",
    "trtexec_version", "TrtVersion", "parse_version", "version_from_trtexec",
]
