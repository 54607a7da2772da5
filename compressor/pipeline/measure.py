"""Stage `measure`: dense and pruned files timed side by side on the chosen runtime."""

from __future__ import annotations

from ..onnx_import.tensors import torch_to_numpy
from .state import Measured, RunState
from .stages import register_stage


@register_stage("measure")
def measure(state: RunState) -> Measured:
    from deploy.latency import device_description, measure_onnxruntime_latency, speedup  # replaced by runtimes on merge

    loaded, exported = state.loaded, state.exported
    batch = loaded.batch_info.native if loaded.batch_info.runs_own_batch_only else 1  # as the dense file takes
    feeds = {name: torch_to_numpy(t[:batch]) for name, t in zip(loaded.module.input_names, exported.sample)}

    def run():
        stats = measure_onnxruntime_latency({"dense": state.path, "compressed": exported.result.path}, feeds,
                                            runs=state.options.measure.latency_runs)
        return {"dense": stats["dense"].to_dict(), "compressed": stats["compressed"].to_dict(),
                "speedup": speedup(stats["dense"], stats["compressed"]), "device": device_description(stats["dense"].threads)}

    return Measured(state.timed("latency_s", run))
