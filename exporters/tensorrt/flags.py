"""The build settings for one engine, decided per TensorRT API generation (deploy.md §1, §3).

10.x: weakly typed network; the precision is asked for with builder flags (FP16, INT8) and 2:4
kernels with SPARSE_WEIGHTS, which only take effect together with FP16 or INT8.
11.x: every network is strongly typed and the precision flags are gone, so the ONNX's own types
decide: FP16 needs FP16 weights in the file (engine.py writes a float16 copy, exporters/fp16.py),
INT8 needs Q/DQ nodes. SPARSE_WEIGHTS remains in the
enum; the weights it can use must already be FP16 or Q/DQ INT8.

The decision is a plain dataclass of names (TensorRT's enum member names), so it is tested
without TensorRT and turned into API calls (build.py) or trtexec arguments (trtexec.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from compressor.errors import EngineError

from .model import ModelFacts
from .versions import TrtVersion, check_supported

PRECISIONS = ("fp32", "fp16", "int8")
AUTOCAST = "or convert it with python -m modelopt.onnx.autocast --onnx_path MODEL.onnx --keep_io_types"
# what to do about float32 weights on 11.x; make_engine does the first itself
_TO_FP16 = f"write a float16 copy (exporters.fp16.write_float16; `compress engine` does so itself) {AUTOCAST}"


@dataclass(frozen=True)
class BuildDecision:
    version: TrtVersion
    precision: str                      # what the engine computes in, as far as the settings decide it
    builder_flags: tuple[str, ...]      # trt.BuilderFlag member names
    network_flags: tuple[str, ...]      # trt.NetworkDefinitionCreationFlag member names
    sparse: bool                        # SPARSE_WEIGHTS asked for
    notes: tuple[str, ...] = ()

    @property
    def strongly_typed(self) -> bool:
        return self.version.strongly_typed_only or "STRONGLY_TYPED" in self.network_flags


def decide(version: TrtVersion, precision: str, facts: ModelFacts, sparse: bool | None = None) -> BuildDecision:
    """`sparse`: True insists on 2:4 kernels (refused where they cannot apply), None uses them when
    the precision allows, False never."""
    check_supported(version)
    if precision not in PRECISIONS:
        raise EngineError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "int8" and not facts.has_qdq:
        # 10.x could calibrate, but calibrators are deprecated there and removed in 11.x
        raise EngineError(f"INT8 on TensorRT {version} needs a Q/DQ-quantized ONNX (QuantizeLinear/DequantizeLinear); "
                          "this model has none")
    if version.strongly_typed_only:
        return _strongly_typed(version, precision, facts, sparse)
    return _weakly_typed(version, precision, sparse)


def _weakly_typed(version: TrtVersion, precision: str, sparse: bool | None) -> BuildDecision:
    flags, notes = [], []
    if precision == "fp16":
        flags.append("FP16")
    elif precision == "int8":
        # layers outside the Q/DQ pairs may then run in FP16 rather than FP32
        flags += ["INT8", "FP16"]
    use_sparse = _sparse_allowed(sparse, precision != "fp32",
                                 f"2:4 sparse kernels on TensorRT {version} need --precision fp16 or int8", notes)
    if use_sparse:
        flags.append("SPARSE_WEIGHTS")
    if (version.major, version.minor) >= (10, 12):
        notes.append(f"TensorRT {version} deprecates weak typing (removed in 11); precision flags still used")
    return BuildDecision(version, precision, tuple(flags), (), use_sparse, tuple(notes))


def _strongly_typed(version: TrtVersion, precision: str, facts: ModelFacts, sparse: bool | None) -> BuildDecision:
    notes = [f"TensorRT {version} builds strongly typed networks: the ONNX types decide the precision"]
    weights = facts.weight_float or "float32"
    if precision == "fp16" and weights != "float16":
        raise EngineError(f"FP16 on TensorRT {version} needs an ONNX with float16 weights (this one has {weights}): "
                          f"{_TO_FP16}")
    if precision == "fp32" and facts.has_qdq:
        notes.append("the ONNX has Q/DQ nodes, so those layers compute in INT8 whatever --precision says")
        precision = "int8"
    elif precision == "fp32" and weights == "float16":
        notes.append("the ONNX holds float16 weights, so the engine computes in FP16 whatever --precision says")
        precision = "fp16"
    low_precision = precision in ("fp16", "int8")
    use_sparse = _sparse_allowed(sparse, low_precision,
                                 f"2:4 sparse kernels on TensorRT {version} need float16 weights in the ONNX "
                                 f"or Q/DQ INT8 (this one has {weights}): {_TO_FP16}", notes)
    flags = ("SPARSE_WEIGHTS",) if use_sparse else ()
    return BuildDecision(version, precision, flags, (), use_sparse, tuple(notes))


def _sparse_allowed(sparse: bool | None, possible: bool, refusal: str, notes: list[str]) -> bool:
    if sparse is False:
        return False
    if possible:
        return True
    if sparse:
        raise EngineError(refusal)
    notes.append("SPARSE_WEIGHTS left off: " + refusal.split(": ")[0])  # the reason, without the advice
    return False
