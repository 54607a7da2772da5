"""compressor.runtimes.verdict: the bootstrap interval of a ratio of medians and the verdict read from it,
on synthetic samples whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from compressor.runtimes.verdict import (FASTER, MIN_SAMPLES, NO_DIFFERENCE, SLOWER, TOO_FEW,
                                         bootstrap_ratio_interval, compare, decide, ratio_of_medians)


def _lognormal(median: float, n: int, seed: int, sigma: float = 0.2) -> np.ndarray:
    return median * np.exp(np.random.default_rng(seed).normal(0.0, sigma, n))


def test_identical_distributions_show_no_measurable_difference():
    for seed in range(5):
        result = compare(_lognormal(1.0, 400, seed), _lognormal(1.0, 400, 100 + seed))
        low, high = result.interval
        assert low < 1 < high and high - low < 0.15, result
        assert result.verdict == NO_DIFFERENCE


def test_clearly_separated_samples_are_faster_or_slower():
    dense, compressed = _lognormal(2.0, 200, 1), _lognormal(1.0, 200, 2)
    faster = compare(dense, compressed)
    assert faster.verdict == FASTER and 1.7 < faster.interval[0] <= faster.ratio <= faster.interval[1] < 2.3
    slower = compare(compressed, dense)
    assert slower.verdict == SLOWER and slower.interval[1] < 1
    assert slower.ratio == pytest.approx(1 / faster.ratio)


def test_a_small_real_difference_needs_enough_samples():
    """3% apart with 20% noise: 20 rounds cannot tell, 20,000 can."""
    few = compare(_lognormal(1.03, 20, 3), _lognormal(1.0, 20, 4))
    many = compare(_lognormal(1.03, 20_000, 3), _lognormal(1.0, 20_000, 4))
    assert few.verdict == NO_DIFFERENCE
    assert many.verdict == FASTER and many.interval[0] > 1.0


def test_pairing_cancels_noise_both_models_share():
    """Each round's machine state scales both models alike (a drift of 2x across the run); the
    compressed one is 5% faster in every round. Paired by round the interval sees that; resampled
    independently the drift swamps it."""
    drift = np.linspace(1.0, 2.0, 200)
    dense, compressed = 1.05 * drift, drift
    paired = compare(dense, compressed, paired=True)
    independent = compare(dense, compressed, paired=False)
    assert paired.verdict == FASTER and paired.interval[0] == pytest.approx(1.05, rel=0.01)
    assert independent.verdict == NO_DIFFERENCE


def test_the_same_seed_gives_the_same_interval():
    a, b = _lognormal(1.0, 300, 5), _lognormal(1.02, 300, 6)
    assert bootstrap_ratio_interval(a, b, seed=7) == bootstrap_ratio_interval(a, b, seed=7)
    assert bootstrap_ratio_interval(a, b, seed=7) != bootstrap_ratio_interval(a, b, seed=8)
    # lists and arrays alike
    assert compare(a, b).to_dict() == compare(list(a), list(b)).to_dict()


def test_confidence_widens_the_interval():
    a, b = _lognormal(1.0, 300, 5), _lognormal(1.0, 300, 6)
    low90, high90 = bootstrap_ratio_interval(a, b, confidence=0.90)
    low99, high99 = bootstrap_ratio_interval(a, b, confidence=0.99)
    assert low99 < low90 < high90 < high99


def test_too_few_samples_give_no_interval_and_no_claim():
    result = compare([2.0] * (MIN_SAMPLES - 1), [1.0] * (MIN_SAMPLES - 1))
    assert (result.interval, result.verdict, result.ratio) == (None, TOO_FEW, 2.0)
    assert compare([2.0] * MIN_SAMPLES, [1.0] * MIN_SAMPLES).verdict == FASTER


def test_decide_reads_the_interval_and_the_margin():
    assert decide(1.2, (1.01, 1.5)) == FASTER
    assert decide(0.8, (0.5, 0.99)) == SLOWER
    assert decide(1.0, (0.9, 1.1)) == decide(1.1, (1.0, 1.2)) == decide(0.9, (0.8, 1.0)) == NO_DIFFERENCE
    # clear of 1 but smaller than the margin: not a difference worth the name
    assert decide(1.01, (1.005, 1.015)) == decide(0.99, (0.985, 0.995)) == NO_DIFFERENCE
    assert decide(1.01, (1.005, 1.015), margin=0.0) == FASTER
    assert decide(1.0, None) == TOO_FEW


def test_a_tiny_consistent_difference_is_not_measurable():
    """0.1% apart, 20,000 rounds of 1% noise: the interval leaves 1, the verdict does not move."""
    result = compare(_lognormal(0.999, 20_000, 8, sigma=0.01), _lognormal(1.0, 20_000, 9, sigma=0.01))
    assert result.interval[1] < 1 and result.verdict == NO_DIFFERENCE


def test_bad_arguments():
    assert ratio_of_medians([1.0], [0.0]) == float("inf")
    with pytest.raises(ValueError, match="as many samples"):
        bootstrap_ratio_interval([1.0] * 10, [1.0] * 11)
    assert bootstrap_ratio_interval([1.0] * 10, [1.0] * 11, paired=False) == (1.0, 1.0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ratio_interval([1.0] * 10, [1.0] * 10, confidence=1.0)
    with pytest.raises(ValueError):
        bootstrap_ratio_interval([], [1.0])
