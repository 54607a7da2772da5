"""Stage `report`: report.json and report.md (with plots) from the stages' typed outputs.

Counts are read from the exported file as written, so the report cannot disagree with it. The
method's own sections and any stage output's `report_entries()` are merged without this module
knowing which method or stage produced them.
"""

from __future__ import annotations

import time

import numpy as np
import onnx

from ..files import file_bytes, write_json_atomic
from ..onnx_import.stored import stored_tensors
from ..reporting import write_markdown_report
from ..reporting.plots import save_figure
from .state import RunState
from .stages import register_stage


@register_stage("report")
def report(state: RunState) -> dict:
    opts, loaded, prepared, planned, pruned = state.options, state.loaded, state.prepared, state.planned, state.pruned
    exported, measured = state.exported, state.measured
    module, dense, result = loaded.module, loaded.dense, pruned.result
    written = onnx.load(str(exported.result.path))  # the file as written, external data included
    dense_layers, dense_params = model_statistics(dense.onnx_model, dense, pruned.plan)
    # a slim file (channels removed) is counted against the dense layers: what is gone, zeroed or removed
    reference = {layer["name"]: layer["params"] for layer in dense_layers} if exported.slim is not None else None
    layers, params = model_statistics(written, module, pruned.plan, reference)
    params["dense_nonzero"] = dense_params["nonzero"]
    params["dense_total"] = dense_params["total"]
    params["dense_prunable_nonzero"] = dense_params["prunable_nonzero"]
    objective = prepared.objective
    out_dir = state.out_dir
    doc = {
        "method": opts.method,
        "pattern": opts.plan.pattern,
        "scope": opts.plan.scope,
        "target_sparsity": planned.target if opts.plan.target_flops is None else None,
        **({"target_flops": opts.plan.target_flops} if opts.plan.target_flops is not None else {}),
        "sparsity": 1.0 - params["prunable_nonzero"] / max(params["prunable"], 1),
        "params": params,
        # a slim file is smaller than the dense one: its ratio is against the dense file's parameters
        "compression_ratio": (dense_params["total"] if exported.slim is not None else params["total"]) / max(params["nonzero"], 1),
        "layers": layers,
        "task": prepared.task.name,
        "metrics": {"dense": pruned.dense_metrics, "compressed": state.verified.metrics, "kind": objective.kind,
                    "split": prepared.split, "primary": objective.primary_metric,
                    "specs": {name: spec.to_dict() for name, spec in objective.metric_specs().items()}},
        "latency_ms": measured.latency if measured is not None else {},
        "file_bytes": {"dense": file_bytes(state.path), "compressed": exported.result.file_bytes if exported.slim is None
                       else file_bytes(exported.result.path)},
        "data": prepared.info,
        "inputs": {name: {"shape": shape, "dtype": str(dtype).removeprefix("torch.")} for name, shape, dtype in loaded.inputs},
        "batch": loaded.batch_info.to_dict(),
        "training": {**loaded.method.describe(), "batch_size": loaded.batch_size, "seed": opts.training.seed,
                     **dict(zip(("reinsert_bn", "recalibrate_bn"), opts.training.batchnorm_for(opts.method)))},
        "plan": pruned.plan.to_dict(),
        "protection": planned.protection,
        "notes": state.notes,
        "trace": pruned.session.trace,
        "model": str(state.path),
    }
    for output in state.outputs.values():  # entries of stages the report does not know (export's parity, plug-ins)
        if hasattr(output, "report_entries"):
            doc.update(output.report_entries())
    if result.after_pruning is not None:
        doc["after_pruning"] = result.after_pruning.to_dict()
        doc[result.after_pruning.legacy_key] = result.after_pruning.metrics  # the key earlier reports had
    staging = state.staging
    sections = []
    for section in result.sections:
        doc[section.key] = section.data
        figures = [name for name, draw in section.figures.items() if save_figure(draw(), staging / name)]
        sections.append({"key": section.key, "title": section.title, "figures": figures,
                         "markdown": "\n".join(section.markdown(set(figures)))})
    doc["sections"] = sections

    final = {"onnx": str(out_dir / "model.onnx"), "report_json": str(out_dir / "report.json"),
             "report_md": str(out_dir / "report.md")}
    if exported.result.data_path is not None:
        final["onnx_data"] = str(out_dir / exported.result.data_path.name)
    doc["outputs"] = final
    write_markdown_report(doc, staging)
    doc["outputs"]["plots"] = sorted(str(out_dir / p.name) for p in staging.glob("*.png"))
    state.timings["total_s"] = time.perf_counter() - state.started
    doc["timings"] = state.timings
    write_json_atomic(staging / "report.json", doc)
    return doc


def model_statistics(model: onnx.ModelProto, module, plan, reference: dict[str, int] | None = None) -> tuple[list[dict], dict]:
    """Per-layer and total counts of a model's stored tensors. With `reference` (each layer's dense
    size), a layer made smaller counts its removed entries as pruned: params stay the dense size,
    the shape is the written one."""
    arrays = stored_tensors(model)
    # weights computed by constant subgraphs (e.g. ConstantOfShape) are stored nowhere: the module holds them
    arrays.update({n: module.parameter(n).detach().numpy() for n in module.weights if n not in arrays})
    layers = []
    for name, info in module.weights.items():
        array = arrays[name]
        size = int(array.size) if reference is None else reference[name]
        layers.append({
            "name": name, "node": info.node, "op": info.op_type, "shape": list(array.shape), "params": size,
            "target": plan.targets.get(name), "sparsity": float(1.0 - np.count_nonzero(array) / max(size, 1)),
            "note": plan.skipped.get(name),
        })
    float_arrays = [a for a in arrays.values() if a.dtype.kind == "f"]
    params = {
        "total": int(sum(a.size for a in float_arrays)),
        "nonzero": int(sum(np.count_nonzero(a) for a in float_arrays)),
        "prunable": int(sum(layer["params"] for layer in layers)),
        "prunable_nonzero": int(sum(np.count_nonzero(arrays[layer["name"]]) for layer in layers)),
    }
    return layers, params

