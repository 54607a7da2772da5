"""The pipeline's `engine` stage: a TensorRT engine built from the exported ONNX, next to it in the
run's output, with the layers that went 2:4 sparse in report.json.

Not in the default order (most machines have no TensorRT); a run asks for it with `--engine trt`
(`engine="trt"`) or `insert_stage(DEFAULT_STAGES, "engine", after="export")`. Its preflight
finds TensorRT or trtexec before the run starts, so a missing one costs no training. It builds with the exporter's defaults
(FP16, 2:4 kernels where the precision allows, whichever of the package or trtexec is installed);
on TensorRT 11 it builds from a float16 copy, model.fp16.onnx, which joins the output too.

report.json's `engine.layers` says, per weight of the `--plan auto` plan (or, without one, per weight
of the layers TensorRT found eligible), which TensorRT layer holds it and whether that layer was
picked sparse, ran dense, was not eligible, or the log had no sparsity lines (layers.py, deploy.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compressor.pipeline.stages import register_stage
from compressor.pipeline.state import RunState

from .engine import EngineOutcome, choose_route, make_engine
from .layers import engine_layers, node_weights_of_file

ENGINE_FILE = "model.engine"


@dataclass
class EngineBuilt:
    outcome: EngineOutcome
    layers: list[dict] = field(default_factory=list)  # {weight, planned, node, trt_layer, status}

    def report_entries(self) -> dict:
        o, d, s = self.outcome, self.outcome.decision, self.outcome.sparsity
        return {"engine": {
            "file": o.engine.name, "built_from": o.built_from.name, "tensorrt": str(d.version), "route": o.route, "precision": d.precision,
            "builder_flags": list(d.builder_flags), "sparse_requested": d.sparse, "sparsity_logged": s.logged,
            "sparse_eligible": list(s.eligible), "sparse_picked": list(s.picked), "sparse_ran_dense": list(s.ran_dense),
            "layers": [dict(row) for row in self.layers],
        }}


@register_stage("engine")
def engine(state: RunState) -> EngineBuilt:
    # the export stage left the checked ONNX in the staging folder; the engine joins it there and
    # moves into the output folder with it, only if the whole run succeeds
    onnx_path = state.staging / "model.onnx"
    outcome = state.timed("engine_s", lambda: make_engine(onnx_path, state.staging / ENGINE_FILE))
    state.notes.extend(f"Engine: {note}." for note in outcome.decision.notes)
    planned = state.outputs.get("plan")  # a run without the plan stage has no nm_plan either
    nm_plan = getattr(planned, "nm_plan", None)
    layers = engine_layers(outcome.sparsity, node_weights_of_file(onnx_path), nm_plan)
    return EngineBuilt(outcome, layers)


def _preflight(state: RunState) -> None:
    choose_route()  # the package or trtexec, else one line naming both


engine.preflight = _preflight
