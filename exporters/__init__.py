"""Exporters: the module's weights back into ONNX (and, later, TensorRT engines)."""

from .onnx_export import ExportResult, build_model_proto, export_onnx, stored_tensors
from .parity import ParityResult, check_parity

__all__ = [
    "export_onnx", "build_model_proto", "stored_tensors", "ExportResult", "check_parity", "ParityResult",
]
