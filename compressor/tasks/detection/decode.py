"""From a detector's raw outputs to per-image detections, in pure torch (no torchvision).

Two output conventions are understood:

(a) "single": one tensor [N, A, 4+C] or [N, 4+C, A], as Ultralytics exports YOLOv8 and later
    (its [1, 84, 8400]); per anchor cx, cy, w, h in input pixels, then C class scores. Of the two
    last axes the shorter is the 4+C one (a detector has more anchors than classes).
(b) "pair": boxes [N, A, 4] as x1, y1, x2, y2 in input pixels, and scores [N, C, A] or [N, A, C]:
    the inputs of ONNX NonMaxSuppression, as exports that stop before it give them.

Scores are taken as probabilities in [0, 1]; `scores_are_logits=True` applies a sigmoid first.
Decoding keeps, per anchor, its best class only (no multi-label), as the usual mAP runs do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from ...errors import DataError


@dataclass
class OutputFormat:
    """How to read a detector's outputs (see the module docstring).

    anchor_axis: for "single", the axis of the tensor that counts anchors (1 or 2); for "pair",
    that axis of the scores tensor. boxes_index: for "pair", which output holds the boxes.
    """

    kind: Literal["single", "pair"]
    num_classes: int
    anchor_axis: int
    boxes_index: int = 0
    scores_are_logits: bool = False


def _shape_text(shapes) -> str:
    return ", ".join("[" + ", ".join(str(d) for d in s) + "]" for s in shapes)


def output_format(
    shapes: list[tuple[int, ...]], num_classes: int | None = None, scores_are_logits: bool = False
) -> OutputFormat:
    """Infer the output convention from the outputs' shapes (num_classes settles ambiguous cases).

    Of a single tensor's last two axes the longer counts anchors; of a pair, the output ending in 4 holds
    the boxes and the scores axis as long as the boxes' anchor axis counts anchors.
    """
    shapes = [tuple(s) for s in shapes]
    # The batch axis may be symbolic (a name or None in an ONNX graph); the other two must be known.
    three_d = all(len(s) == 3 and all(isinstance(d, int) and d > 0 for d in s[1:]) for s in shapes)
    if not three_d or len(shapes) not in (1, 2):
        raise DataError(
            f"detector outputs {_shape_text(shapes)} are neither one [N, anchors, 4+classes] tensor "
            "nor boxes [N, anchors, 4] with scores [N, classes, anchors]"
        )
    if len(shapes) == 1:
        _, x, y = shapes[0]
        if num_classes is not None:
            width = 4 + num_classes
            axes = [axis for axis, d in ((1, y), (2, x)) if d == width]
            if len(axes) != 1:
                raise DataError(
                    f"detector output [{', '.join(map(str, shapes[0]))}] has "
                    + ("no axis" if not axes else "two axes")
                    + f" of 4 + {num_classes} classes = {width}"
                )
            return OutputFormat("single", num_classes, axes[0], scores_are_logits=scores_are_logits)
        if x == y or min(x, y) < 5:
            raise DataError(
                f"detector output [{', '.join(map(str, shapes[0]))}]: cannot tell the anchor axis from the "
                "4+classes axis; give the number of classes"
            )
        anchor_axis = 1 if x > y else 2
        return OutputFormat("single", min(x, y) - 4, anchor_axis, scores_are_logits=scores_are_logits)

    boxes_candidates = [i for i, s in enumerate(shapes) if s[2] == 4]
    for bi in boxes_candidates:
        boxes, scores = shapes[bi], shapes[1 - bi]
        if boxes[0] != scores[0]:
            continue
        anchors = boxes[1]
        options = []
        if scores[2] == anchors:
            options.append((2, scores[1]))
        if scores[1] == anchors:
            options.append((1, scores[2]))
        if num_classes is not None:
            options = [o for o in options if o[1] == num_classes]
        if len(options) == 1:
            axis, classes = options[0]
            return OutputFormat("pair", classes, axis, boxes_index=bi, scores_are_logits=scores_are_logits)
        if len(options) > 1:
            raise DataError(
                f"detector outputs {_shape_text(shapes)}: as many classes as anchors; give the number of classes"
            )
    raise DataError(
        f"detector outputs {_shape_text(shapes)} are not boxes [N, anchors, 4] with scores [N, classes, anchors] "
        "or [N, anchors, classes]" + (f" for {num_classes} classes" if num_classes is not None else "")
    )


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box of a [K, 4] with every box of b [M, 4] (x1, y1, x2, y2): [K, M]."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    # Per coordinate and in place: NMS builds this for thousands of boxes, and [K, M, 2] temporaries
    # took twice the time.
    a, b = a[:, None, :], b[None, :, :]
    inter_w = torch.minimum(a[..., 2], b[..., 2]).sub_(torch.maximum(a[..., 0], b[..., 0])).clamp_(min=0)
    inter_h = torch.minimum(a[..., 3], b[..., 3]).sub_(torch.maximum(a[..., 1], b[..., 1])).clamp_(min=0)
    inter = inter_w.mul_(inter_h)
    union = (area_a[:, None] + area_b[None, :]).sub_(inter).clamp_(min=1e-9)
    return inter.div_(union)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> torch.Tensor:
    """Greedy NMS: indices of the kept boxes, best first; a box goes when its IoU with a kept one exceeds `iou`."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True)
    # suppresses[i, j]: box i, ranked above j, overlaps it enough to remove it if i is kept.
    suppresses = (box_iou(boxes[order], boxes[order]) > iou).triu_(diagonal=1).float()
    kept = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    undecided = torch.ones_like(kept)
    # Greedy NMS decided in rounds rather than box by box (a Python loop over thousands of boxes is slow):
    # an undecided box is kept once no kept-or-undecided box above it suppresses it, and removed once a
    # kept one does. The best undecided box is always settled, so this ends, with greedy's answer.
    while bool(undecided.any()):
        blocked = ((kept | undecided).float() @ suppresses) > 0
        kept |= undecided & ~blocked
        killed = (kept.float() @ suppresses) > 0
        undecided &= ~(kept | killed)
    return order[kept]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou: float) -> torch.Tensor:
    """NMS per class: each class's boxes are shifted apart so boxes of different classes never overlap."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offset = classes.to(boxes.dtype) * (boxes.max() - boxes.min() + 1)
    return nms(boxes + offset[:, None], scores, iou)


def _xywh_center_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    half = b[..., 2:4] / 2
    return torch.cat([b[..., :2] - half, b[..., :2] + half], dim=-1)


def boxes_and_scores(outputs: Sequence[torch.Tensor], fmt: OutputFormat) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes x1, y1, x2, y2 [N, A, 4] and scores [N, A, C] (as the model gives them: probabilities, or
    logits when fmt says so), differentiable: the losses read predictions through this too."""
    outputs = [torch.as_tensor(o) for o in outputs]
    if fmt.kind == "single":
        t = outputs[0].float()
        if fmt.anchor_axis == 2:
            t = t.transpose(1, 2)
        boxes, scores = _xywh_center_to_xyxy(t[..., :4]), t[..., 4:]
    else:
        boxes = outputs[fmt.boxes_index].float()
        scores = outputs[1 - fmt.boxes_index].float()
        if fmt.anchor_axis == 2:
            scores = scores.transpose(1, 2)
    if scores.shape[-1] != fmt.num_classes:
        raise DataError(f"detector scores have {scores.shape[-1]} classes, expected {fmt.num_classes}")
    return boxes, scores


def decode(
    outputs: Sequence[torch.Tensor],
    fmt: OutputFormat,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    pre_nms: int = 3000,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per image: boxes x1, y1, x2, y2 [k, 4], scores [k], classes [k] (long, contiguous 0..C-1), best first.

    Anchors scoring at most `conf` go; the `pre_nms` best enter class-wise NMS at `iou`; `max_det` stay.
    """
    boxes, scores = boxes_and_scores(outputs, fmt)
    if fmt.scores_are_logits:
        scores = scores.sigmoid()
    results = []
    for image_boxes, image_scores in zip(boxes, scores):
        best, classes = image_scores.max(dim=-1)
        chosen = (best > conf).nonzero().squeeze(1)
        if len(chosen) > pre_nms:
            chosen = chosen[best[chosen].topk(pre_nms).indices]
        b, s, c = image_boxes[chosen], best[chosen], classes[chosen]
        kept = batched_nms(b, s, c, iou)[:max_det]
        results.append((b[kept], s[kept], c[kept].long()))
    return results


def to_coco_detections(
    decoded: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    image_ids: Sequence[int],
    class_ids: list[int],
    scale: list[tuple[float, float]],
    pad: list[tuple[float, float]] | None = None,
) -> list[dict]:
    """COCO result dicts: classes back to category ids, boxes back to the original image as [x, y, w, h].

    A box in model-input pixels maps to original pixels as (x - pad_x) * scale_x, (y - pad_y) * scale_y:
    scale is original size / resized size per image, pad the letterbox border (none by default).
    """
    if not (len(decoded) == len(image_ids) == len(scale)) or (pad is not None and len(pad) != len(decoded)):
        raise DataError(
            f"{len(decoded)} decoded images for {len(image_ids)} image ids and {len(scale)} scales"
        )
    detections = []
    for index, ((boxes, scores, classes), image_id, (sx, sy)) in enumerate(zip(decoded, image_ids, scale)):
        px, py = pad[index] if pad is not None else (0.0, 0.0)
        factor = torch.tensor([sx, sy, sx, sy], dtype=torch.float64)
        shift = torch.tensor([px, py, px, py], dtype=torch.float64)
        xyxy = (boxes.detach().double().cpu() - shift) * factor
        for (x1, y1, x2, y2), score, cls in zip(xyxy.tolist(), scores.tolist(), classes.tolist()):
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": class_ids[int(cls)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    return detections
