"""The `compress` pipeline: a short sequence of named stages with typed outputs.

    load -> data -> plan -> prune -> verify -> export -> measure -> report

    report = compress("model.onnx", method="magnitude", sparsity=0.9, data="digits", epochs=5)

Data flows one way. The dense model is imported twice: one copy is pruned, the other stays as the
reference (and as the teacher when there are no labels). See docs/architecture.md.
"""

from .options import CompressOptions
from .runner import Pipeline, compress
from .stages import DEFAULT_STAGES, STAGES, insert_stage, register_stage
from .state import CHECKPOINT_NAME, STAGING_DIR, RunState

__all__ = ["CHECKPOINT_NAME", "CompressOptions", "DEFAULT_STAGES", "Pipeline", "RunState", "STAGES", "STAGING_DIR",
           "compress", "insert_stage", "register_stage"]
