"""A verdict on a latency ratio: is the compressed model faster, slower, or not measurably different?

The ratio is dense p50 / compressed p50 (>1: the compressed model is faster). Its confidence
interval comes from a percentile bootstrap with a fixed seed, so the same samples always give the
same interval. Resampling is paired by round: sample i of each model was taken in the same round
of the interleaved loop, under the same machine state (frequency, other processes), and the round
is the unit the design makes exchangeable. Resampling rounds keeps that shared noise shared, where
resampling each model on its own would treat it as independent noise twice over. `paired=False`
resamples the two models independently (for samples not taken in rounds, or of unequal counts).

The verdict is read from the interval and a margin: "faster" when the interval lies entirely above
1 and the ratio is at least 1 + `margin`, "slower" when it lies entirely below 1 and the ratio is at
most 1 / (1 + `margin`), otherwise "no measurable difference". The margin (default 2%) is there
because thousands of rounds make an interval so narrow that immaterial differences leave it clear
of 1: the LeNet example timed against its own byte copy (8,718 rounds) gave 0.9992, interval
0.9988-0.9995, a "slower" by the interval alone. Below `MIN_SAMPLES` per model there is no
interval: the bootstrap distribution of a median of a handful of values has too few distinct
values to give a trustworthy interval, so the verdict is "too few runs".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FASTER = "faster"
SLOWER = "slower"
NO_DIFFERENCE = "no measurable difference"
TOO_FEW = "too few runs"
VERDICTS = (FASTER, SLOWER, NO_DIFFERENCE, TOO_FEW)

MIN_SAMPLES = 10
MARGIN = 0.02  # the smallest relative difference called measurable
CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
_CHUNK_VALUES = 4_000_000  # bounds the memory of one block of resamples (values per block)


@dataclass(frozen=True)
class RatioVerdict:
    ratio: float  # median(numerator) / median(denominator) of the samples themselves
    interval: tuple[float, float] | None  # None below MIN_SAMPLES
    verdict: str  # one of VERDICTS
    confidence: float
    samples: int  # per model (paired: rounds)
    margin: float
    paired: bool
    resamples: int
    seed: int

    def to_dict(self) -> dict:
        return {"ratio": self.ratio, "interval": list(self.interval) if self.interval else None,
                "verdict": self.verdict, "confidence": self.confidence, "samples": self.samples,
                "margin": self.margin, "paired": self.paired, "resamples": self.resamples, "seed": self.seed}


def ratio_of_medians(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    den = float(np.median(np.asarray(denominator, dtype=np.float64)))
    num = float(np.median(np.asarray(numerator, dtype=np.float64)))
    return float("inf") if den <= 0 else num / den


def bootstrap_ratio_interval(numerator: Sequence[float], denominator: Sequence[float], *,
                             confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED,
                             paired: bool = True) -> tuple[float, float]:
    """Percentile-bootstrap interval at `confidence` for median(numerator) / median(denominator)."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1 or num.size == 0 or den.size == 0:
        raise ValueError(f"need samples and resamples >= 1, got {num.size}, {den.size} samples, {resamples} resamples")
    if paired and num.size != den.size:
        raise ValueError(f"paired resampling needs as many samples of each, got {num.size} and {den.size}")
    rng = np.random.default_rng(seed)
    ratios = np.empty(resamples)
    block = max(1, _CHUNK_VALUES // max(num.size, den.size))
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        pick_num = rng.integers(0, num.size, size=(count, num.size))
        pick_den = pick_num if paired else rng.integers(0, den.size, size=(count, den.size))
        medians_den = np.median(den[pick_den], axis=1)
        with np.errstate(divide="ignore"):
            ratios[start:start + count] = np.median(num[pick_num], axis=1) / medians_den
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return float(low), float(high)


def decide(ratio: float, interval: tuple[float, float] | None, margin: float = MARGIN) -> str:
    if interval is None:
        return TOO_FEW
    low, high = interval
    if low > 1 and ratio >= 1 + margin:
        return FASTER
    if high < 1 and ratio <= 1 / (1 + margin):
        return SLOWER
    return NO_DIFFERENCE


def compare(numerator: Sequence[float], denominator: Sequence[float], *, confidence: float = CONFIDENCE,
            resamples: int = RESAMPLES, seed: int = SEED, paired: bool = True, margin: float = MARGIN) -> RatioVerdict:
    """The ratio of medians, its interval and the verdict (numerator: dense, denominator: compressed)."""
    samples = min(len(numerator), len(denominator))
    interval = None
    if samples >= MIN_SAMPLES:
        interval = bootstrap_ratio_interval(numerator, denominator, confidence=confidence, resamples=resamples,
                                            seed=seed, paired=paired)
    ratio = ratio_of_medians(numerator, denominator)
    return RatioVerdict(ratio=ratio, interval=interval, verdict=decide(ratio, interval, margin), confidence=confidence,
                        samples=samples, margin=margin, paired=paired, resamples=resamples, seed=seed)


def control_margin(control: RatioVerdict, floor: float = MARGIN) -> float:
    """The margin a same-file control measured in the same rounds justifies: how far from 1 the
    ratio of a file to its own copy reached (interval ends included), never below `floor`.

    Two sessions of the same file are not timed alike: on a 2-core EPYC the LeNet example against
    its byte copy read 1.013 to 1.047 over five measurements, with intervals clear of 1
    (docs/benchmarks.md, bench/latency_repeatability.py). A difference no larger than that is the
    measurement, not the model."""
    if control.interval is None:
        return floor
    low, high = control.interval
    return max(floor, high - 1.0, 1.0 / low - 1.0 if low > 0 else float("inf"))
