"""Global unstructured pruning: one magnitude threshold across several tensors.

Layers then end up with different sparsities (wide, redundant layers lose more), while the total
keep-count over all given tensors is exact. Ties are broken in a fixed order: the tensors in the
order given (execution order for a plan), then flat index inside each tensor.
"""

from __future__ import annotations

import torch

from .selection import keep_count, scores_for_ranking, top_k_mask


def global_masks(weights: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Bool masks (True = kept) keeping the n − round(p·n) largest |w| over all `weights` jointly."""
    if not weights:
        return {}
    tensors = list(weights.values())
    device = tensors[0].device
    with torch.no_grad():
        scores = torch.cat([scores_for_ranking(t.reshape(-1)).abs().to(device) for t in tensors])
        kept = top_k_mask(scores, keep_count(scores.numel(), sparsity))
    masks, start = {}, 0
    for name, t in weights.items():
        masks[name] = kept[start:start + t.numel()].reshape(t.shape).to(t.device).clone()  # own storage
        start += t.numel()
    return masks
