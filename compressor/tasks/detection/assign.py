"""Which anchor points learn which object: the anchor grid of a YOLO-style output and the assignment.

An anchor-free head predicts one box per cell of each stride's feature map, flattened stride by
stride, row-major (YOLOv8, YOLO11 and the project's YOLO all do); the grid is recovered from the
number of anchors and the input size. Each object is learnt by the anchors whose centres lie in
its box and near its centre (centre sampling, radius 2.5 strides), the `TOP_K` of them whose
predicted boxes fit it best, and always at least the anchor nearest its centre on the stride that
suits its size, so that small objects are never left without one.
"""

from __future__ import annotations

import math

import torch

from ...errors import DataError
from .decode import box_iou

STRIDE_SETS = ((8, 16, 32), (8, 16, 32, 64), (16, 32, 64))
CENTRE_RADIUS = 2.5  # in strides
TOP_K = 10


def anchor_grid(num_anchors: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(centres [A, 2] in input pixels, strides [A]) for an output with `num_anchors` points."""
    for strides in STRIDE_SETS:
        sizes = [(math.ceil(height / s), math.ceil(width / s)) for s in strides]
        if sum(h * w for h, w in sizes) == num_anchors:
            centres, stride_list = [], []
            for (h, w), s in zip(sizes, strides):
                ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
                centres.append(torch.stack(((xs.reshape(-1) + 0.5) * s, (ys.reshape(-1) + 0.5) * s), 1))
                stride_list.append(torch.full((h * w,), float(s)))
            return torch.cat(centres), torch.cat(stride_list)
    raise DataError(f"the detection output has {num_anchors} anchor points, which matches no stride set "
                    f"{', '.join('/'.join(map(str, s)) for s in STRIDE_SETS)} at {height}x{width}")


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of matched xyxy boxes [n, 4], [n, 4] -> [n]."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1) + (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1) - inter
    iou = inter / union.clamp(min=1e-9)
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).clamp(min=0).prod(-1)
    return iou - (hull - union) / hull.clamp(min=1e-9)


@torch.no_grad()
def assign(pred_boxes: torch.Tensor, centres: torch.Tensor, strides: torch.Tensor, gt_boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For one image: (gt index per anchor, -1 for background [A]; IoU of each positive's box with its object [A]).

    pred_boxes [A, 4] xyxy, gt_boxes [G, 4] xyxy (crowd regions excluded by the caller)."""
    num_anchors = centres.shape[0]
    owner = torch.full((num_anchors,), -1, dtype=torch.long)
    quality = torch.zeros(num_anchors)
    if gt_boxes.numel() == 0:
        return owner, quality
    ious = box_iou(gt_boxes, pred_boxes)  # [G, A]
    gt_centres = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    inside = ((centres[None] > gt_boxes[:, None, :2]) & (centres[None] < gt_boxes[:, None, 2:])).all(-1)
    near = ((centres[None] - gt_centres[:, None]).abs() < CENTRE_RADIUS * strides[None, :, None]).all(-1)
    candidate = inside & near
    # the anchor nearest each centre, on the stride whose cells suit the object's size
    sides = (gt_boxes[:, 2:] - gt_boxes[:, :2]).max(-1).values
    unique_strides = torch.unique(strides)
    best_stride = unique_strides[(torch.log2(sides[:, None] / 8.0 / unique_strides[None])).abs().argmin(1)]
    distance = (centres[None] - gt_centres[:, None]).pow(2).sum(-1)
    distance = torch.where(strides[None] == best_stride[:, None], distance, torch.full_like(distance, float("inf")))
    nearest = distance.argmin(1)
    score = torch.where(candidate, ious, torch.full_like(ious, -1.0))
    score[torch.arange(len(gt_boxes)), nearest] = 2.0  # always positive
    k = min(TOP_K, num_anchors)
    top = score.topk(k, dim=1)
    chosen = torch.zeros_like(candidate)
    chosen.scatter_(1, top.indices, top.values > -1.0)
    # an anchor wanted by several objects learns the one its box overlaps most
    masked = torch.where(chosen, ious, torch.full_like(ious, -1.0))
    best = masked.max(0)
    positive = best.values > -1.0
    owner[positive] = best.indices[positive]
    quality[positive] = ious[best.indices[positive], torch.nonzero(positive).squeeze(1)].clamp(min=0)
    return owner, quality
