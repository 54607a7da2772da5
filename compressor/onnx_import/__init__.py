"""ONNX -> trainable PyTorch import.

    module = load_onnx("model.onnx")
    module(x)                       # same outputs as onnxruntime
    module.weights                  # prunable weights by ONNX name, with layout and reduction axis
    module.parameter("conv1.weight")
"""

from __future__ import annotations

from pathlib import Path

import onnx

from ..errors import CompressorError, ModelLoadError, first_line

from .builder import build_module
from .module import OnnxModule
from .reader import LoadedModel, read_model, unsupported_ops, validate_structure
from .weights import WeightInfo

__all__ = ["load_onnx", "load_onnx_proto", "OnnxModule", "WeightInfo", "unsupported_ops"]


def load_onnx(path: str | Path) -> OnnxModule:
    """Import an ONNX file as a trainable module. The file is only read, never written."""
    loaded = read_model(path)
    try:
        return build_module(loaded)
    except CompressorError:
        raise
    except Exception as exc:  # a damaged graph can break any operator's builder or the folding
        raise ModelLoadError(f"{path}: cannot import the graph: {first_line(exc)}") from exc


def load_onnx_proto(proto: onnx.ModelProto, label: str = "model") -> OnnxModule:
    """Import an in-memory ModelProto (its tensors must not reference external files)."""
    validate_structure(proto, label)
    return build_module(LoadedModel(proto, None, False), label)
