"""The detection loss on a detector's own outputs: GIoU for the boxes of assigned anchors, binary
cross-entropy for every anchor's class scores (YOLOv8's gains, 7.5 and 0.5).

It reads the outputs as the exported graph gives them (boxes in input pixels, class
probabilities), so it trains an imported ONNX detector as it is, decoding included. A positive's
class target rises with how well its box fits, (1 + IoU) / 2, so scores rank good boxes first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .assign import assign, giou

BOX_GAIN, CLASS_GAIN = 7.5, 0.5
PROB_EPS = 1e-6


def detection_loss(boxes: torch.Tensor, scores: torch.Tensor, targets: dict, centres: torch.Tensor,
                   strides: torch.Tensor, scores_are_logits: bool = False) -> torch.Tensor:
    """boxes [N, A, 4] xyxy and scores [N, A, C] as predicted; targets: "boxes" [N, M, 4] xyxy in
    input pixels, "classes" [N, M] (-1: padding), "crowd" [N, M] (crowd regions teach nothing)."""
    n, _, num_classes = scores.shape
    logits = scores if scores_are_logits else torch.logit(scores.clamp(PROB_EPS, 1 - PROB_EPS))
    class_target = torch.zeros_like(logits)
    box_terms, weights = [], []
    for i in range(n):
        keep = (targets["classes"][i] >= 0) & (targets["crowd"][i] == 0)
        gt_boxes, gt_classes = targets["boxes"][i][keep].to(boxes.dtype), targets["classes"][i][keep]
        owner, quality = assign(boxes[i].detach(), centres, strides, gt_boxes)
        positive = owner >= 0
        if positive.any():
            anchors = torch.nonzero(positive).squeeze(1)
            cls = gt_classes[owner[anchors]].clamp(max=num_classes - 1)
            weight = (1 + quality[anchors]) / 2
            class_target[i, anchors, cls] = weight.to(class_target.dtype)
            box_terms.append((1 - giou(boxes[i, anchors], gt_boxes[owner[anchors]])) * weight)
            weights.append(weight)
    norm = torch.cat(weights).sum().clamp(min=1.0) if weights else torch.tensor(1.0)
    cls_loss = F.binary_cross_entropy_with_logits(logits, class_target, reduction="sum") / norm
    box_loss = torch.cat(box_terms).sum() / norm if box_terms else boxes.sum() * 0
    return BOX_GAIN * box_loss + CLASS_GAIN * cls_loss  # both per unit of positive weight in the batch
