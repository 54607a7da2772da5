"""Exporters: the module's weights back into ONNX (and, later, TensorRT engines)."""

from .onnx_export import ExportResult, build_model_proto, export_onnx
from .parity import ParityResult, check_parity

__all__ = ["export_onnx", "build_model_proto", "ExportResult", "check_parity", "ParityResult"]
