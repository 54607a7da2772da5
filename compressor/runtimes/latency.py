"""Latency of ONNX files in a runtime, measured side by side under one protocol.

The protocol (`LatencyProtocol`, the one every latency figure of ours follows):

- **Warm-up** by time and count: rounds until at least `warmup_seconds` have passed and at least
  `warmup_runs` rounds ran; discarded (lazy loading, allocator growth, frequency ramp-up).
- **Run length by duration**: timed rounds until `seconds` have passed and at least `min_runs`
  rounds ran, never more than `max_runs`; so a fast model gets thousands of samples and a slow one
  the minimum. `max_seconds` caps the whole measurement: past it warm-up stops after one round and
  timing after `FLOOR_RUNS` rounds.
- **Interleaved, order rotated**: one call per model per round, the starting model rotating each
  round (two models: a,b then b,a ...), so neither always runs first (timed in a fixed order the
  model that ran first was about 11% slower, issue 11); the time budget ends only after whole
  rotations, so each model runs first equally often.
- **Threads pinned and recorded**: `threads=None` pins the runtime to the CPUs this process may
  use, and `LatencyStats.threads` records the number.
- **The session's own clock**: each sample is what the session's `timer` returns, host wall time
  around one run by default, CUDA-event time of the kernels on a GPU session that records them
  (deploy.md §6.3); `LatencyStats.clock` says which, and every figure is labelled with it.
- **Defaults by device** (`default_protocol`): a CPU runtime gets 2 s of timed rounds (at least
  20); a GPU runtime deploy.md §6's warm-up (at least 50 runs and 200 ms) and run length (at
  least 1,000 runs and 10 s).

The figures are quoted as percentiles and a ratio of medians with a verdict from its bootstrap
interval (`verdict.py`), never as a FLOP count (landscape.md §2, lesson 1). Each figure is the time of one
run at the batch of the feeds, in the runtime named (by default onnxruntime on the CPU).

The issue asked for this protocol in ``deploy/``; it lives here in the core because the
pipeline's report uses it and ``compressor`` must not import ``deploy`` (docs/architecture.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import CompressorError, ConfigError, InferenceError
from .base import HOST_CLOCK, Runtime, RuntimeSession, get_runtime
from .verdict import RatioVerdict, compare, control_margin

FLOOR_RUNS = 5  # past max_seconds, timing still gets this many rounds
DEFAULT_RUNTIME = "onnxruntime-cpu"


@dataclass(frozen=True)
class LatencyProtocol:
    warmup_runs: int = 10
    warmup_seconds: float = 0.2
    seconds: float = 2.0  # the timed rounds' budget
    min_runs: int = 20
    max_runs: int = 20_000
    max_seconds: float | None = 60.0  # hard cap on the whole measurement, warm-up included

    def __post_init__(self):
        if self.warmup_runs < 0 or self.warmup_seconds < 0 or self.seconds < 0:
            raise ValueError(f"warm-up and budget must be >= 0, got {self}")
        if not 1 <= self.min_runs <= self.max_runs:
            raise ValueError(f"need 1 <= min_runs <= max_runs, got {self.min_runs}, {self.max_runs}")

    @classmethod
    def fixed(cls, runs: int, warmup: int = 0) -> LatencyProtocol:
        """Exactly `runs` timed rounds after exactly `warmup` warm-up rounds (no time rules)."""
        return cls(warmup_runs=warmup, warmup_seconds=0.0, seconds=0.0, min_runs=runs, max_runs=runs,
                   max_seconds=None)

    def to_dict(self) -> dict:
        return asdict(self)


GPU_PROTOCOL = LatencyProtocol(warmup_runs=50, warmup_seconds=0.2, seconds=10.0, min_runs=1000, max_runs=1_000_000,
                               max_seconds=180.0)


def default_protocol(device_kind: str, seconds: float | None = None, max_runs: int | None = None) -> LatencyProtocol:
    """The protocol for a runtime on `device_kind` ("CPU" or "GPU"), with the user's time budget
    and cap on the rounds (which also lowers the minimum to it) where given."""
    protocol = GPU_PROTOCOL if device_kind == "GPU" else LatencyProtocol()
    if seconds is not None:
        protocol = replace(protocol, seconds=seconds)
    if max_runs is not None:
        protocol = replace(protocol, max_runs=max_runs, min_runs=min(protocol.min_runs, max_runs))
    return protocol


@dataclass(frozen=True)
class LatencyStats:
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    runs: int
    threads: int | None  # intra-op threads the runtime was pinned to; None: the runtime's default
    batch: int | None  # first dimension of the first feed; None for a scalar feed
    samples_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)  # in round order; kept out of reports
    clock: str = HOST_CLOCK  # what one sample is (the session's `clock`)
    details: dict = field(default_factory=dict, compare=False)  # the session's `details()`

    @classmethod
    def from_samples(cls, samples_ns: list[int], threads: int | None, batch: int | None, clock: str = HOST_CLOCK,
                     details: Mapping | None = None) -> LatencyStats:
        if not samples_ns:
            raise ValueError("no latency samples")
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
        return cls(
            mean_ms=float(ms.mean()), p50_ms=p50, p90_ms=p90, p99_ms=p99,
            min_ms=float(ms.min()), max_ms=float(ms.max()), runs=len(samples_ns), threads=threads, batch=batch,
            samples_ms=tuple(float(v) for v in ms), clock=clock, details=dict(details or {}),
        )

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "samples_ms" and not (k == "details" and not v)}


def speedup(dense: LatencyStats, compressed: LatencyStats) -> float:
    """How many times faster the compressed model is, as a ratio of medians (>1: faster)."""
    if compressed.p50_ms <= 0:
        return float("inf")
    return dense.p50_ms / compressed.p50_ms


def verdict(dense: LatencyStats, compressed: LatencyStats, control: RatioVerdict | None = None, **options) -> RatioVerdict:
    """dense p50 / compressed p50 with its interval and verdict, paired by round (see verdict.py);
    `options` go to `verdict.compare`. With `control` (the verdict of the dense file against a second
    session of itself, timed in the same rounds) the margin is what that ratio reached (`control_margin`)."""
    if control is not None and "margin" not in options:
        options["margin"] = control_margin(control)
    return compare(dense.samples_ms, compressed.samples_ms, **options)


def parse_batches(text: str, flag: str = "--batch") -> tuple[int, ...]:
    """'1,8,32' -> (1, 8, 32); one line naming the problem otherwise."""
    try:
        batches = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{flag} takes sizes separated by commas, e.g. 1,8,32; got {text!r}") from None
    if not batches or any(b < 1 for b in batches):
        raise ConfigError(f"{flag} sizes must be 1 or more, got {text!r}")
    return batches


def pinned_threads() -> int:
    """The CPUs this process may run on: what `threads=None` pins a measurement to."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_interleaved(
    runners: Mapping[str, Callable[[], object]],
    protocol: LatencyProtocol = LatencyProtocol(),
    *,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> dict[str, list[int]]:
    """`run_timers` with each runner timed by `clock` around its call."""
    def host_timed(runner: Callable[[], object]) -> Callable[[], int]:
        def timed() -> int:
            t0 = clock()
            runner()
            return clock() - t0

        return timed

    return run_timers({name: host_timed(runner) for name, runner in runners.items()}, protocol, clock=clock)


def run_timers(
    timers: Mapping[str, Callable[[], int]],
    protocol: LatencyProtocol = LatencyProtocol(),
    *,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> dict[str, list[int]]:
    """Warm up, then time rounds of one call per timer (each returns its run's duration in ns),
    the first timer of a round rotating (see the module's docstring); the budgets are read on
    `clock`. Returns the durations in round order, the same count for every timer."""
    names = list(timers)
    start = clock()
    deadline = None if protocol.max_seconds is None else start + int(protocol.max_seconds * 1e9)

    def past(t0: int, seconds: float) -> bool:
        return clock() - t0 >= int(seconds * 1e9)

    def out_of_time() -> bool:
        return deadline is not None and clock() > deadline

    def order(i: int) -> list[str]:
        k = i % len(names)
        return names[k:] + names[:k]

    rounds = 0
    while rounds < protocol.warmup_runs or not past(start, protocol.warmup_seconds):
        if rounds >= 1 and out_of_time():
            break
        for name in order(rounds):
            timers[name]()
        rounds += 1

    samples: dict[str, list[int]] = {name: [] for name in names}
    timing_start = clock()
    floor = min(FLOOR_RUNS, protocol.max_runs)
    rounds = 0
    while rounds < protocol.max_runs:
        whole = rounds % len(names) == 0  # each timer has started a round equally often
        if whole and rounds >= protocol.min_runs and past(timing_start, protocol.seconds):
            break
        if whole and rounds >= floor and out_of_time():
            break
        for name in order(rounds):
            samples[name].append(int(timers[name]()))
        rounds += 1
    return samples


def measure_latency(
    models: Mapping[str, Path],
    feeds: Mapping[str, np.ndarray],
    *,
    runtime: str | Runtime = DEFAULT_RUNTIME,
    protocol: LatencyProtocol | None = None,
    threads: int | None = None,
    runtimes: Mapping[str, Runtime] | None = None,
) -> dict[str, LatencyStats]:
    """Time each ONNX file on the same feeds, interleaved under `protocol` (None: the default for
    the runtime's device), in ``runtime`` (a registered name, made with ``threads`` intra-op
    threads, None: `pinned_threads()`; or a made Runtime); one ``LatencyStats`` per model name,
    in the mapping's order. `runtimes` gives some models a runtime of their own (the same file
    with and without an option, e.g. 2:4 kernels on and off, timed in one run).

    Each model gets the feeds its graph declares as inputs (extra feeds are ignored, a missing one
    is an error).
    """
    if isinstance(runtime, Runtime):
        engine = runtime
        threads = engine.threads
    else:
        threads = pinned_threads() if threads is None else threads
        engine = get_runtime(runtime, threads=threads)
    protocol = protocol if protocol is not None else default_protocol(engine.device_kind)
    timers: dict[str, Callable[[], int]] = {}
    sessions: dict[str, RuntimeSession] = {}
    for name, path in models.items():
        own = (runtimes or {}).get(name, engine)
        session = _open(own, Path(path))
        wanted = session.input_names
        missing = [n for n in wanted if n not in feeds]
        if missing:
            raise CompressorError(f"latency: {path} needs inputs {missing}, got feeds {sorted(feeds)}")
        timers[name] = _timer(own, session, {n: feeds[n] for n in wanted}, path)
        sessions[name] = session
    samples = run_timers(timers, protocol)
    batch = _batch_of(feeds)
    return {name: LatencyStats.from_samples(s, threads, batch, sessions[name].clock, sessions[name].details())
            for name, s in samples.items()}


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


def _timer(runtime: Runtime, session: RuntimeSession, model_feeds: dict[str, np.ndarray], path) -> Callable[[], int]:
    timer = session.timer(model_feeds)

    def timed() -> int:
        try:
            return timer()
        except InferenceError as exc:
            raise InferenceError(f"{runtime.name} cannot run {path}: {exc}") from None

    return timed


def _batch_of(feeds: Mapping[str, np.ndarray]) -> int | None:
    for array in feeds.values():
        shape = np.shape(array)
        return int(shape[0]) if shape else None
    return None
