"""Exporters: the module's weights back into ONNX, its float16 copy (fp16.py), and TensorRT engines."""

from .fp16 import Float16Model, to_float16, write_float16
from .onnx_export import ExportResult, build_model_proto, export_onnx, stored_tensors
from .parity import ParityResult, check_parity

__all__ = [
    "export_onnx", "build_model_proto", "stored_tensors", "ExportResult", "check_parity", "ParityResult",
    "to_float16", "write_float16", "Float16Model",
]
