"""`compress bench`: latency of one or more ONNX files on one runtime, side by side.

Every batch size is one interleaved measurement of all the models under the latency protocol
(compressor/runtimes/latency.py: warm-up, a time budget, the order rotated each round, threads
pinned), so ratios against the first model are measured in one run, each with its bootstrap
interval and verdict (compressor/runtimes/verdict.py). The first model also runs a second time in
the same rounds, as a same-file control: a ratio is only called faster or slower beyond what the
control's own ratio reached. Inputs are seeded random tensors of the
first model's input shapes (image-like inputs uniform in [0, 1)). The result is a dict (written as
JSON with the machine, date and command) and a PNG of the latency distributions.
"""

from __future__ import annotations

import datetime
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from compressor.errors import ConfigError
from compressor.files import write_json_atomic
from compressor.onnx_import import load_onnx
from compressor.onnx_import.inputs import random_inputs, resolve_input_shapes
from compressor.onnx_import.tensors import torch_to_numpy
from compressor.reporting import formatting as fmt
from compressor.reporting.plots import save_figure
from compressor.runtimes import get_runtime
from compressor.runtimes.latency import (LatencyProtocol, default_protocol, device_label, measure_latency, pinned_threads,
                                         speedup, verdict)
from compressor.runtimes.onnxruntime_cpu import cpu_name


CONTROL = "control"  # the first model opened a second time


def bench(models: Sequence[Path], *, runtime: str = "onnxruntime-cpu", runtime_options: Mapping[str, object] | None = None,
          batches: Sequence[int] = (1,), input_shapes: Mapping[str, list[int]] | None = None,
          protocol: LatencyProtocol | None = None, seconds: float | None = None, threads: int | None = None,
          seed: int = 0, variants: Sequence[Mapping[str, object]] = (), command: str = "") -> dict:
    """Time `models` at each batch size; ratios and verdicts against the first model. `protocol`
    None: the default for the runtime's device (`default_protocol`), with `seconds` as its budget.
    Each of `variants` (runtime options over `runtime_options`) times every model once more, in the
    same rounds, under those options: e.g. a 2:4 file with and without sparse kernels."""
    if not models:
        raise ConfigError("compress bench needs at least one model")
    paths = [Path(m) for m in models]
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
    threads = pinned_threads() if threads is None else threads
    engine = get_runtime(runtime, threads=threads, options=runtime_options)  # an unknown runtime or option fails before any import
    protocol = protocol if protocol is not None else default_protocol(engine.device_kind, seconds)
    variant_runtimes = []
    for options in variants:
        made = get_runtime(runtime, threads=threads, options={**(runtime_options or {}), **options})
        variant_runtimes.append((" [" + ", ".join(f"{k}={v}" for k, v in options.items()) + "]", made))
    reference = load_onnx(paths[0])
    labels = _labels(paths)
    sources = dict(zip(labels, paths))
    own_runtime = {}
    for suffix, made in variant_runtimes:
        for label, path in zip(list(labels), paths):
            sources[label + suffix] = path
            own_runtime[label + suffix] = made
    labels = list(sources)
    rows = []
    for batch in batches:
        shapes = resolve_input_shapes(reference, dict(input_shapes) if input_shapes else None, batch=batch)
        tensors = random_inputs(reference, {n: [batch, *s[1:]] for n, s in shapes.items()}, batch=batch, seed=seed)
        feeds = {name: torch_to_numpy(t) for name, t in zip(reference.input_names, tensors)}
        # the first model a second time, in the same rounds: the margin a ratio must clear (verdict.control_margin)
        timed = {**sources, CONTROL: paths[0]}
        stats = measure_latency(timed, feeds, runtime=engine, protocol=protocol, runtimes=own_runtime)
        first, control = stats[labels[0]], stats[CONTROL]
        same_file = verdict(first, control)
        entries = []
        for label, path in sources.items():
            s = stats[label]
            entry = {"model": label, "path": str(path), "latency": s.to_dict(), "samples_ms": list(s.samples_ms),
                     "clock": s.clock,
                     "throughput_per_s": batch * 1000.0 / s.mean_ms if s.mean_ms > 0 else None}
            if label != labels[0]:
                v = verdict(first, s, same_file)
                entry["vs_first"] = {**v.to_dict(), "speedup": speedup(first, s)}
            entries.append(entry)
        rows.append({"batch": batch, "inputs": {n: [batch, *s[1:]] for n, s in shapes.items()}, "models": entries,
                     "control": {"ratio": same_file.ratio, "interval": same_file.interval,
                                 "samples_ms": list(control.samples_ms)}})
    description = engine.describe()
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpu": cpu_name(),
                    **(gpu_facts() if engine.device_kind == "GPU" else {})},
        "runtime": engine.name,
        "runtime_options": engine.options_dict(),
        "variants": [dict(v) for v in variants],
        "device": device_label(description),
        "describe": description,
        "threads": threads,
        "protocol": protocol.to_dict(),
        "seed": seed,
        "batches": rows,
    }


def gpu_facts() -> dict:
    """The GPU side of the machine for benchmark records (deploy.md §6.1): PyTorch's view of the
    device, and the driver, clocks and throttle reasons from nvidia-smi where it is installed."""
    import shutil
    import subprocess

    import torch

    facts = {"torch": torch.__version__, "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
        facts["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        facts["cusparselt"] = torch.backends.cusparselt.is_available()
    if shutil.which("nvidia-smi"):
        query = "name,driver_version,clocks.sm,clocks.max.sm,clocks_throttle_reasons.active,temperature.gpu"
        ran = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
        facts["nvidia_smi"] = {"query": query, "values": ran.stdout.strip() or ran.stderr.strip()}
    return facts


def table(result: Mapping) -> str:
    """The console table: one row per model and batch, the ratio against the first in words."""
    header = ("batch", "model", "p50", "p90", "p99", "mean", "min", "max", "runs", "per s", "vs first")
    lines = []
    for row in result["batches"]:
        for entry in row["models"]:
            s = entry["latency"]
            versus = ""
            if "vs_first" in entry:
                v = entry["vs_first"]
                versus = fmt.latency_verdict({"speedup": v["speedup"], "speedup_interval": v["interval"], "verdict": v["verdict"],
                                              "confidence": v["confidence"], "dense": {"runs": v["samples"]}}, sign="x", dash="-")
            lines.append((str(row["batch"]), entry["model"], *(fmt.milliseconds(s[k]) for k in ("p50_ms", "p90_ms", "p99_ms",
                          "mean_ms", "min_ms", "max_ms")), str(s["runs"]), f"{entry['throughput_per_s']:.1f}", versus))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    options = ", ".join(f"{k}={v}" for k, v in (result.get("runtime_options") or {}).items())
    clock = next((e.get("clock") for row in result["batches"] for e in row["models"] if e.get("clock")), None)
    out = [f"{result['runtime']}{f' ({options})' if options else ''} on {result['device']}, {result['threads']} threads; "
           f"{f'each time is {clock}; ' if clock else ''}ratios: first model's p50 / this one's"]
    for entry in result["batches"][0]["models"]:
        kernels = (entry["latency"].get("details") or {}).get("semi_structured")
        if kernels:
            out.append(f"{entry['model']}: {kernels['sparse_layers']} of {len(kernels['layers'])} prunable layers on "
                       f"semi-structured 2:4 kernels ({kernels['backend']})")
    for row in result["batches"]:
        c = row["control"]
        span = f", 95% interval {c['interval'][0]:.3f}-{c['interval'][1]:.3f}" if c["interval"] else ""
        out.append(f"batch {row['batch']}: same-file control (the first model timed again) {c['ratio']:.3f}{span}; "
                   "a ratio inside that reach is no measurable difference")
    out.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    return "\n".join(out)


def write_json(result: Mapping, path: Path) -> Path:
    return write_json_atomic(Path(path), result)


def plot(result: Mapping, path: Path) -> Path | None:
    """Box plots of every model's latency samples, one panel per batch size."""
    from matplotlib.figure import Figure

    rows = result["batches"]
    figure = Figure(figsize=(4.0 + 1.2 * len(rows[0]["models"]) * len(rows), 3.6), layout="constrained")
    axes = figure.subplots(1, len(rows), squeeze=False)[0]
    for ax, row in zip(axes, rows):
        ax.boxplot([entry["samples_ms"] for entry in row["models"]], showfliers=False)
        ax.set_xticks(range(1, len(row["models"]) + 1), [entry["model"] for entry in row["models"]], rotation=20, fontsize=7)
        ax.set_title(f"batch {row['batch']}", fontsize=9)
        ax.set_ylabel("latency per run (ms)")
        ax.grid(alpha=0.3, axis="y")
    figure.suptitle(f"{result['runtime']}: {result['device']}", fontsize=9)
    return save_figure(figure, Path(path))


def _labels(paths: Sequence[Path]) -> list[str]:
    """Model names for tables: file names, made unique with their folder when two clash."""
    names = [p.name for p in paths]
    labels = []
    for i, path in enumerate(paths):
        label = names[i] if names.count(names[i]) == 1 else f"{path.parent.name}/{path.name}"
        while label in labels:
            label += "'"
        labels.append(label)
    return labels
