"""Reading TensorRT's build log and trtexec's report.

Sparsity (deploy.md §3): a verbose build logs, at INFO, two lines of the form
    (Sparsity) Layers eligible for sparse math: Conv_0 + Relu_1, Conv_2, MatMul_5
    (Sparsity) TRT inference plan picked sparse implementation for layers: Conv_2
with the list empty when there are none; trtexec prefixes them with "[date-time] [I] [TRT] ", the
Python logger with whatever the logger writes (format seen in TensorRT 8.x-10.x verbose logs quoted
in NVIDIA/TensorRT issues #1403, #2169, #4054). Fused layers are named "A + B".

Latency (deploy.md §4): trtexec ends with a performance summary whose lines are
    Throughput: 501.618 qps
    Latency: min = 1.8 ms, max = 3.2 ms, mean = 2.05 ms, median = 2.03 ms, percentile(90%) = 2.2 ms, ...
    GPU Compute Time: min = ..., (same fields)
    Total Host Walltime: 3.0 s
where "Latency" is the host latency (H2D + compute + D2H).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ELIGIBLE = re.compile(r"\(Sparsity\) Layers eligible for sparse math:(.*)$")
_PICKED = re.compile(r"\(Sparsity\) TRT inference plan picked sparse implementation for layers:(.*)$")
_THROUGHPUT = re.compile(r"\bThroughput:\s*([\d.eE+-]+)\s*qps")
_STATS = re.compile(r"(Latency|Host Latency|Enqueue Time|H2D Latency|GPU Compute Time|D2H Latency):\s*"
                    r"(min\s*=.*)$")
_FIELD = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=\s*([\d.eE+-]+)\s*ms")
_TOTAL = re.compile(r"(Total Host Walltime|Total GPU Compute Time):\s*([\d.eE+-]+)\s*s\b")


@dataclass(frozen=True)
class SparsityReport:
    eligible: tuple[str, ...]   # layers TensorRT could run with 2:4 kernels
    picked: tuple[str, ...]     # of those, where timing chose a sparse kernel
    logged: bool                # the log had the lines at all (a verbose build with SPARSE_WEIGHTS)

    @property
    def ran_dense(self) -> tuple[str, ...]:
        """Eligible but dense: the dense kernel was faster (deploy.md §3, "Eligible does not mean used")."""
        picked = set(self.picked)
        return tuple(name for name in self.eligible if name not in picked)


def sparsity_from_log(text: str) -> SparsityReport:
    eligible, picked, logged = [], [], False
    for line in text.splitlines():
        for pattern, into in ((_ELIGIBLE, eligible), (_PICKED, picked)):
            match = pattern.search(line)
            if match:
                logged = True
                into.extend(_layer_names(match[1]))
    return SparsityReport(tuple(dict.fromkeys(eligible)), tuple(dict.fromkeys(picked)), logged)


def _layer_names(listed: str) -> list[str]:
    return [name.strip() for name in listed.split(",") if name.strip()]


@dataclass(frozen=True)
class TimeStats:
    """One summary line of trtexec, in milliseconds; percentiles keyed by their percent (90.0, 99.0)."""
    min: float
    max: float
    mean: float
    median: float
    percentiles: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrtexecSummary:
    throughput_qps: float | None
    stats: dict[str, TimeStats]          # "Latency" (host), "GPU Compute Time", "Enqueue Time", ...
    totals_s: dict[str, float]           # "Total Host Walltime", "Total GPU Compute Time"

    @property
    def host_bound(self) -> bool | None:
        """Enqueue slower than the kernels: the host, not the GPU, sets the pace (deploy.md §4)."""
        enqueue, compute = self.stats.get("Enqueue Time"), self.stats.get("GPU Compute Time")
        if enqueue is None or compute is None:
            return None
        return enqueue.median > compute.median


def summary_from_trtexec(text: str) -> TrtexecSummary | None:
    """The last performance summary in trtexec's output; None when it ran no inference."""
    # only the summary block counts: with --dumpProfile other tables print times as well
    start = text.rfind("=== Performance summary ===")
    if start < 0:
        return None
    throughput, stats, totals = None, {}, {}
    for line in text[start:].splitlines():
        match = _THROUGHPUT.search(line)
        if match:
            throughput = float(match[1])
            continue
        match = _STATS.search(line)
        if match:
            stats[match[1]] = _stats(match[2])
            continue
        match = _TOTAL.search(line)
        if match:
            totals[match[1]] = float(match[2])
    return TrtexecSummary(throughput, stats, totals)


def _stats(fields: str) -> TimeStats:
    values, percentiles = {}, {}
    for name, percent, value in _FIELD.findall(fields):
        if percent:
            percentiles[float(percent)] = float(value)
        else:
            values[name] = float(value)
    return TimeStats(values["min"], values["max"], values["mean"], values["median"], percentiles)
