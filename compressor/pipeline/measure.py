"""Stage `measure`: dense and pruned files timed side by side (interleaved) on the chosen runtime."""

from __future__ import annotations

from ..onnx_import.tensors import torch_to_numpy
from ..runtimes import get_runtime
from ..runtimes.latency import device_label, measure_latency, speedup
from .state import Measured, RunState
from .stages import register_stage


@register_stage("measure")
def measure(state: RunState) -> Measured:
    loaded, exported, opts = state.loaded, state.exported, state.options.measure
    batch = loaded.batch_info.native if loaded.batch_info.runs_own_batch_only else 1  # as the dense file takes
    feeds = {name: torch_to_numpy(t[:batch]) for name, t in zip(loaded.module.input_names, exported.sample)}

    def run() -> dict:
        stats = measure_latency({"dense": state.path, "compressed": exported.result.path}, feeds,
                                runtime=opts.runtime, runs=opts.latency_runs)
        runtime = get_runtime(opts.runtime, threads=stats["dense"].threads)
        return {"dense": stats["dense"].to_dict(), "compressed": stats["compressed"].to_dict(),
                "speedup": speedup(stats["dense"], stats["compressed"]), "runtime": runtime.name,
                "device": device_label(runtime.describe())}

    return Measured(state.timed("latency_s", run))
