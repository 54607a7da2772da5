"""Exact, deterministic top-k selection: the counting rule every projection shares.

Pruning by a percentile threshold misses the target count and treats ties inconsistently (a
weight at exactly the threshold can end up zero in one place and frozen in another). Here every
keep-count is an exact integer, and ties are resolved by position: among equal scores the lower
flat index is kept, which is what a stable sort on the negated scores gives.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError


def check_sparsity(sparsity: float, *, allow_one: bool = False) -> float:
    """`sparsity` as a float in [0, 1) (or [0, 1] with `allow_one`); ConfigError otherwise."""
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise ConfigError(f"sparsity must be a number in [0, 1), got {sparsity!r}") from None
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if not (value >= 0.0 and upper_ok):  # also rejects NaN
        bound = "[0, 1]" if allow_one else "[0, 1)"
        raise ConfigError(f"sparsity must be in {bound}, got {sparsity!r}")
    return value


def keep_count(n: int, sparsity: float) -> int:
    """How many of `n` units survive pruning at `sparsity`: n − round(p·n).

    `round` is Python's (ties to even), applied once, so the count is exact and reproducible.
    """
    p = check_sparsity(sparsity, allow_one=True)
    return n - int(round(p * n))


def align_count(k: int, n: int, align: int) -> int:
    """Round a keep-count of groups to a multiple of `align`, never below `align` nor above `n`.

    Structured masks meant for physical removal want channel counts the hardware likes (8, 32...).
    The result is the candidate nearest to `k` among the multiples of `align` that fit in `n`,
    plus `n` itself (keeping everything is always allowed); a tie keeps more. With `align` = 1
    this only keeps at least one group: a layer with no filter left would cut the network.
    """
    if n <= 0:
        return 0
    if align <= 1:
        return min(max(k, 1), n)
    if n <= align:
        return n  # any pruning would go below the alignment
    k = min(max(k, 1), n)
    lower = max(align, (k // align) * align)  # <= k, or align when k < align
    upper = min(-(-k // align) * align, n)  # >= lower
    return lower if abs(k - lower) < abs(upper - k) else upper


def scores_for_ranking(x: torch.Tensor) -> torch.Tensor:
    """Float32 scores with NaN ranked last, so a corrupted weight never wins a tie-break."""
    s = x.detach().to(torch.float32)
    return torch.nan_to_num(s, nan=-math.inf)


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the `k` largest entries of a 1-D `scores`; ties keep lower indices first.

    Equal to taking the first `k` of a stable sort on −scores, in O(n): find the k-th largest
    value τ, keep everything above it, then the first entries equal to τ in index order.
    """
    if scores.dim() != 1:
        raise ValueError(f"top_k_mask expects a 1-D tensor, got shape {tuple(scores.shape)}")
    n = scores.numel()
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=scores.device)
    mask = torch.zeros(n, dtype=torch.bool, device=scores.device)
    if k <= 0:
        return mask
    tau = torch.kthvalue(scores, n - k + 1).values  # the k-th largest
    mask |= scores > tau
    need = k - int(mask.sum().item())
    tied = torch.nonzero(scores == tau).flatten()[:need]
    mask[tied] = True
    return mask


def top_k_per_row(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask keeping the `k` largest entries of each row of a 2-D `scores` (ties: lower index)."""
    order = torch.sort(-scores, dim=-1, stable=True).indices[..., :k]
    mask = torch.zeros_like(scores, dtype=torch.bool)
    return mask.scatter_(-1, order, True)
