"""Stage `measure`: dense and pruned files timed side by side (interleaved, order rotated) on the
chosen runtime under the latency protocol, and a verdict on their ratio."""

from __future__ import annotations

from dataclasses import replace

from ..onnx_import.tensors import torch_to_numpy
from ..runtimes import get_runtime
from ..runtimes.latency import LatencyProtocol, device_label, measure_latency, speedup, verdict
from .options import MeasureOptions
from .state import Measured, RunState
from .stages import register_stage


def latency_protocol(opts: MeasureOptions) -> LatencyProtocol:
    """The default protocol with the user's budget; --latency-runs caps the rounds (and the minimum with them)."""
    base = LatencyProtocol(seconds=opts.latency_seconds)
    if opts.latency_runs is None:
        return base
    return replace(base, max_runs=opts.latency_runs, min_runs=min(base.min_runs, opts.latency_runs))


CONTROL = "dense (control)"


@register_stage("measure")
def measure(state: RunState) -> Measured:
    loaded, exported, opts = state.loaded, state.exported, state.options.measure
    batch = loaded.batch_info.native if loaded.batch_info.runs_own_batch_only else 1  # as the dense file takes
    feeds = {name: torch_to_numpy(t[:batch]) for name, t in zip(loaded.module.input_names, exported.sample)}

    def run() -> dict:
        protocol = latency_protocol(opts)
        # the dense file a second time, in the same rounds: how far two sessions of one file differ
        stats = measure_latency({"dense": state.path, "compressed": exported.result.path, CONTROL: state.path}, feeds,
                                runtime=opts.runtime, protocol=protocol)
        dense, compressed, control = stats["dense"], stats["compressed"], stats[CONTROL]
        same_file = verdict(dense, control)
        ratio = verdict(dense, compressed, same_file)
        runtime = get_runtime(opts.runtime, threads=dense.threads)
        bootstrap = {k: v for k, v in ratio.to_dict().items() if k in ("paired", "resamples", "seed")}
        return {"dense": dense.to_dict(), "compressed": compressed.to_dict(), "speedup": speedup(dense, compressed),
                "speedup_interval": list(ratio.interval) if ratio.interval else None, "verdict": ratio.verdict,
                "confidence": ratio.confidence, "margin": ratio.margin,
                "control": {"ratio": same_file.ratio, "interval": list(same_file.interval) if same_file.interval else None,
                            "what": "the dense file against a second session of itself, in the same rounds"},
                "protocol": {**protocol.to_dict(), "rounds": dense.runs, "threads": dense.threads,
                             "order": "rotated each round", "bootstrap": bootstrap},
                "runtime": runtime.name, "device": device_label(runtime.describe())}

    return Measured(state.timed("latency_s", run))
