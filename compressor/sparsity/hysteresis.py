"""Recoverable magnitude masks (Dynamic Network Surgery, as OLMP uses them: olmp.md §1-2).

A layer's threshold is T(c) = max(mu + c * sigma, 0), where mu and sigma are the mean and standard
deviation of |theta| over the layer's weight and bias, taken once from the dense model and then
frozen (recomputing them would change what a c-rate means). A refresh compares the current
weights with T and moves only entries that clearly cross it: the band between 0.9 T and 1.1 T
keeps each entry's previous state, so a mask does not flicker and a pruned weight that grows
back past 1.1 T is spliced in again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PRUNE_BELOW = 0.9  # a kept entry is pruned when |theta| <= 0.9 T
SPLICE_ABOVE = 1.1  # a pruned entry comes back when |theta| > 1.1 T


@dataclass(frozen=True)
class MagnitudeStats:
    """mu and sigma of |theta| over a group of tensors (a layer's weight and bias)."""

    mean: float
    std: float

    @classmethod
    def of(cls, tensors: list[torch.Tensor]) -> "MagnitudeStats":
        magnitudes = torch.cat([t.detach().abs().flatten().double() for t in tensors])
        mean = float(magnitudes.mean())
        second_moment = float(magnitudes.square().mean())
        return cls(mean, max(second_moment - mean * mean, 0.0) ** 0.5)

    def threshold(self, c_rate: float) -> float:
        return max(self.mean + float(c_rate) * self.std, 0.0)


def refresh_mask(mask: torch.Tensor, values: torch.Tensor, threshold: float) -> torch.Tensor:
    """The next mask (True = kept) from the previous one and the current values."""
    magnitude = values.detach().abs()
    prune = mask & (magnitude <= PRUNE_BELOW * threshold)
    splice = ~mask & (magnitude > SPLICE_ABOVE * threshold)
    return (mask & ~prune) | splice
