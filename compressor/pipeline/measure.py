"""Stage `measure`: dense and pruned files timed side by side (interleaved, order rotated) on the
chosen runtime, at each batch size asked for, under the latency protocol, with a verdict on their
ratio against a same-file control."""

from __future__ import annotations

import torch

from ..onnx_import.tensors import torch_to_numpy
from ..runtimes import get_runtime
from ..runtimes.latency import default_protocol, device_label, measure_latency, pinned_threads, speedup, verdict
from .state import Measured, RunState
from .stages import register_stage

CONTROL = "dense (control)"
CHANNEL_BATCHES = (1, 8)


@register_stage("measure")
def measure(state: RunState) -> Measured:
    loaded, opts = state.loaded, state.options.measure
    # a slim model (channels removed) is faster at every batch: by default its report shows 1 and 8
    default = CHANNEL_BATCHES if state.planned.pattern.coupled else (1,)
    batches = list(dict.fromkeys(opts.latency_batches or default))
    if loaded.batch_info.runs_own_batch_only:  # as the dense file takes
        native = loaded.batch_info.native
        if opts.latency_batches is not None and batches != [native]:
            state.notes.append(f"Latency at batch {native} only: the model runs its own batch "
                               f"({loaded.batch_info.detail}); --latency-batch {','.join(map(str, batches))} not measured.")
        batches = [native]

    def run() -> dict:
        runtime = get_runtime(opts.runtime, threads=pinned_threads(), options=opts.runtime_options)
        protocol = default_protocol(runtime.device_kind, opts.latency_seconds, opts.latency_runs)
        entries = [_at_batch(state, runtime, protocol, batch) for batch in batches]
        result = dict(entries[0])
        if len(entries) > 1:
            result["by_batch"] = entries
        return result

    return Measured(state.timed("latency_s", run))


def _at_batch(state: RunState, runtime, protocol, batch: int) -> dict:
    feeds = {name: torch_to_numpy(_rows(t, batch)) for name, t in zip(state.loaded.module.input_names, state.exported.sample)}
    # the dense file a second time, in the same rounds: how far two sessions of one file differ
    stats = measure_latency({"dense": state.path, "compressed": state.exported.result.path, CONTROL: state.path}, feeds,
                            runtime=runtime, protocol=protocol)
    dense, compressed, control = stats["dense"], stats["compressed"], stats[CONTROL]
    same_file = verdict(dense, control)
    ratio = verdict(dense, compressed, same_file)
    bootstrap = {k: v for k, v in ratio.to_dict().items() if k in ("paired", "resamples", "seed")}
    entry = {"batch": batch, "dense": dense.to_dict(), "compressed": compressed.to_dict(),
             "speedup": speedup(dense, compressed),
             "speedup_interval": list(ratio.interval) if ratio.interval else None, "verdict": ratio.verdict,
             "confidence": ratio.confidence, "margin": ratio.margin, "clock": dense.clock,
             "control": {"ratio": same_file.ratio, "interval": list(same_file.interval) if same_file.interval else None,
                         "what": "the dense file against a second session of itself, in the same rounds"},
             "protocol": {**protocol.to_dict(), "rounds": dense.runs, "threads": dense.threads,
                          "order": "rotated each round", "bootstrap": bootstrap},
             "runtime": runtime.name, "device": device_label(runtime.describe())}
    if runtime.options_dict():
        entry["runtime_options"] = runtime.options_dict()
    return entry


def _rows(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """`batch` samples along the first axis: the sample's own, repeated as often as needed."""
    if tensor.dim() == 0 or tensor.shape[0] == batch:
        return tensor
    repeats = -(-batch // tensor.shape[0])
    return tensor.repeat(repeats, *([1] * (tensor.dim() - 1)))[:batch]
