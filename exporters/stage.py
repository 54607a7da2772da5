"""The pipeline's `export` stage: the pruned weights written back into the user's own graph, checked
in onnxruntime against the pruned module (exporters/parity.py), into the run's staging folder.

Registered into the core's stage registry; the core finds this module through the package's
entry point (pyproject.toml), so `compressor` never imports `exporters`.
"""

from __future__ import annotations

import shutil

from compressor.data import example_batch
from compressor.onnx_import.tensors import torch_to_numpy
from compressor.pipeline.stages import register_stage
from compressor.pipeline.state import Exported, RunState

from .onnx_export import export_onnx
from .slim_stage import slim_in_place
from .tensorrt import stage as _engine_stage  # noqa: F401 - registers the optional "engine" stage

PARITY_SAMPLES = 8  # the export check runs this many samples (or the model's fixed batch)


@register_stage("export")
def export(state: RunState) -> Exported:
    opts, loaded, prepared, planned = state.options, state.loaded, state.prepared, state.planned
    batch_info = loaded.batch_info
    shutil.rmtree(state.staging, ignore_errors=True)
    state.staging.mkdir(parents=True)
    fixed_file = (batch_info.declared_fixed and not opts.output.dynamic_batch) or batch_info.chunk
    file_batch = batch_info.native if fixed_file else min(len(prepared.val_data), PARITY_SAMPLES)
    sample = example_batch(prepared.val_data, file_batch)
    result = state.timed("export_s", lambda: export_onnx(
        loaded.module, state.staging / "model.onnx", sparse_initializers=opts.output.sparse_initializers,
        parity_inputs=sample, dynamic_batch=opts.output.dynamic_batch,
        metadata={"method": opts.method, "pattern": opts.plan.pattern,
                  "target_sparsity": "searched" if planned.target is None else str(planned.target)}))
    state.notes.extend(f"Export: {warning}." for warning in result.warnings)
    slim = None
    if planned.pattern.coupled:  # the channel pattern: the masked file loses its pruned channels for real
        feeds = {name: torch_to_numpy(t) for name, t in zip(loaded.module.input_names, sample)}
        outcome = state.timed("slim_s", lambda: slim_in_place(result.path, feeds, loaded.module.weights))
        slim = outcome.to_dict()
        state.notes.extend(f"Slim export: {note}." for note in outcome.notes)
        state.log(f"slim export: {outcome.removed} channels removed, {outcome.params_before:,} -> "
                  f"{outcome.params_after:,} parameters, max relative error {outcome.max_relative_error:.2e}")
    if prepared.train_data is None:
        described = f"{file_batch} random inputs"
    else:
        described = f"{file_batch} samples of the validation data ({prepared.val_data.source.name})"
    return Exported(result, sample, described, slim)
