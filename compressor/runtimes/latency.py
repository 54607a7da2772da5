"""Latency of ONNX files in a runtime, measured side by side.

Dense and compressed models are timed in one interleaved loop (a, b, a, b, ...) so that machine
noise (frequency scaling, other processes) hits every model alike, and the figures are quoted as
percentiles and a ratio of medians, never as a FLOP count (landscape.md §2, lesson 1). Each figure
is host wall time of one ``session.run`` at the batch of the feeds, in the runtime named (by default
onnxruntime on the CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import CompressorError, InferenceError
from .base import Runtime, RuntimeSession, get_runtime

MIN_RUNS = 5  # the time budget never cuts a model below this many timed runs
DEFAULT_RUNTIME = "onnxruntime-cpu"


@dataclass(frozen=True)
class LatencyStats:
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    runs: int
    threads: int | None  # intra-op threads asked for; None: the runtime's default (onnxruntime: one per physical core)
    batch: int | None  # first dimension of the first feed; None for a scalar feed

    @classmethod
    def from_samples(cls, samples_ns: list[int], threads: int | None, batch: int | None) -> LatencyStats:
        if not samples_ns:
            raise ValueError("no latency samples")
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
        return cls(
            mean_ms=float(ms.mean()), p50_ms=p50, p90_ms=p90, p99_ms=p99,
            min_ms=float(ms.min()), max_ms=float(ms.max()), runs=len(samples_ns), threads=threads, batch=batch,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def speedup(dense: LatencyStats, compressed: LatencyStats) -> float:
    """How many times faster the compressed model is, as a ratio of medians (>1: faster)."""
    if compressed.p50_ms <= 0:
        return float("inf")
    return dense.p50_ms / compressed.p50_ms


def run_interleaved(
    runners: Mapping[str, Callable[[], object]],
    *,
    warmup: int = 5,
    runs: int = 30,
    max_seconds: float | None = 20.0,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> dict[str, list[int]]:
    """Call each runner ``warmup`` times untimed, then ``runs`` timed rounds, one call per runner
    per round in the mapping's order. Returns the per-call durations in nanoseconds.

    ``max_seconds`` bounds the whole measurement, warm-up included: once it has passed, warm-up
    stops after one call per runner and timing stops after ``MIN_RUNS`` rounds (or ``runs``, if
    fewer), so every runner always has the same number of samples.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    deadline = None if max_seconds is None else clock() + int(max_seconds * 1e9)

    def out_of_time() -> bool:
        return deadline is not None and clock() > deadline

    for i in range(warmup):
        if i >= 1 and out_of_time():
            break
        for run in runners.values():
            run()
    samples: dict[str, list[int]] = {name: [] for name in runners}
    min_rounds = min(MIN_RUNS, runs)
    for i in range(runs):
        if i >= min_rounds and out_of_time():
            break
        for name, run in runners.items():
            start = clock()
            run()
            samples[name].append(clock() - start)
    return samples


def measure_latency(
    models: Mapping[str, Path],
    feeds: Mapping[str, np.ndarray],
    *,
    runtime: str = DEFAULT_RUNTIME,
    warmup: int = 5,
    runs: int = 30,
    threads: int | None = None,
    max_seconds: float | None = 20.0,
) -> dict[str, LatencyStats]:
    """Time each ONNX file on the same feeds, interleaved, in the runtime registered as ``runtime``
    with ``threads`` intra-op threads; one ``LatencyStats`` per model name.

    Each model gets the feeds its graph declares as inputs (extra feeds are ignored, a missing one
    is an error). See :func:`run_interleaved` for warm-up and the time budget.
    """
    engine = get_runtime(runtime, threads=threads)
    runners: dict[str, Callable[[], object]] = {}
    for name, path in models.items():
        session = _open(engine, Path(path))
        wanted = session.input_names
        missing = [n for n in wanted if n not in feeds]
        if missing:
            raise CompressorError(f"latency: {path} needs inputs {missing}, got feeds {sorted(feeds)}")
        model_feeds = {n: feeds[n] for n in wanted}
        runners[name] = _runner(engine, session, model_feeds, path)
    samples = run_interleaved(runners, warmup=warmup, runs=runs, max_seconds=max_seconds)
    batch = _batch_of(feeds)
    return {name: LatencyStats.from_samples(s, threads, batch) for name, s in samples.items()}


def device_label(description: Mapping) -> str:
    """A runtime's ``describe()`` in words for the report's latency label, e.g.
    ``CPU (Intel Xeon ..., onnxruntime 1.31.1, 4 threads)``."""
    threads = description.get("threads")
    details = [description.get("device_name") or ""]
    details += [f"{library} {version}" for library, version in (description.get("versions") or {}).items()]
    details.append(f"{threads} threads" if threads else "default threads")
    return f"{description['device']} ({', '.join(d for d in details if d)})"


def _open(runtime: Runtime, path: Path) -> RuntimeSession:
    try:
        return runtime.open(path)
    except InferenceError as exc:
        raise InferenceError(f"{runtime.name} cannot load {path}: {exc}") from None


def _runner(runtime: Runtime, session: RuntimeSession, model_feeds: dict[str, np.ndarray], path) -> Callable[[], object]:
    def run():
        try:
            return session.run(model_feeds)
        except InferenceError as exc:
            raise InferenceError(f"{runtime.name} cannot run {path}: {exc}") from None

    return run


def _batch_of(feeds: Mapping[str, np.ndarray]) -> int | None:
    for array in feeds.values():
        shape = np.shape(array)
        return int(shape[0]) if shape else None
    return None
