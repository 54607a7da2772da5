"""The UFLD losses (deploy.md section 7), on logits [N, griding_num + 1, rows, lanes].

TuSimple trains with the focal classification loss plus the similarity loss at weight 1 and the
shape loss at weight 0; CULane drops both. The auxiliary segmentation loss belongs to the
training-only branch (deploy/zoo), not to the exported graph these losses see.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_GAMMA = 2.0


def softmax_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Cross-entropy over the cell axis with each term scaled by (1 - p)^gamma: confident rows
    (mostly "no lane") count little, so the rare lane cells drive the gradient."""
    log_p = F.log_softmax(logits, dim=1)
    factor = (1.0 - log_p.exp()) ** gamma
    return F.nll_loss(factor * log_p, target)


def similarity_loss(logits: torch.Tensor) -> torch.Tensor:
    """Smooth L1 between the logits of adjacent row anchors: lanes are continuous from row to row."""
    diff = logits[:, :, :-1] - logits[:, :, 1:]
    return F.smooth_l1_loss(diff, torch.zeros_like(diff))


def expected_cells(logits: torch.Tensor, griding_num: int) -> torch.Tensor:
    """[N, rows, lanes]: the softmax expectation of the cell over the first griding_num classes."""
    prob = torch.softmax(logits[:, :griding_num], dim=1)
    cells = torch.arange(griding_num, dtype=prob.dtype, device=prob.device).reshape(1, -1, 1, 1)
    return (prob * cells).sum(1)


def shape_loss(logits: torch.Tensor, griding_num: int) -> torch.Tensor:
    """L1 of the second differences of the expected positions down the rows: lanes are locally straight."""
    loc = expected_cells(logits, griding_num)
    if loc.shape[1] < 3:
        return loc.sum() * 0
    second = loc[:, 2:] - 2 * loc[:, 1:-1] + loc[:, :-2]
    return second.abs().mean()


def ufld_loss(logits: torch.Tensor, target: torch.Tensor, griding_num: int, sim_weight: float = 1.0,
              shape_weight: float = 0.0) -> torch.Tensor:
    loss = softmax_focal_loss(logits, target)
    if sim_weight:
        loss = loss + sim_weight * similarity_loss(logits)
    if shape_weight:
        loss = loss + shape_weight * shape_loss(logits, griding_num)
    return loss
