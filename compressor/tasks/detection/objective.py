"""Detection objectives: the detection loss against COCO boxes, or the dense model's raw head
outputs without labels; both measured as COCO mAP by pycocotools (detection/metric.py).

With labels, mAP@0.5:0.95 and mAP@0.5 are computed against the ground truth in the original
image's pixels. Without, the dense model's detections (score >= AGREEMENT_SCORE, after NMS) are the
ground truth ("map50_agreement"); on an image where the dense model finds nothing that confident,
its AGREEMENT_FALLBACK best detections are (what it would find, ranked the same). Predictions go through the task's decoding and NMS, never
through a post-processing tail the graph may carry (that part is kept as it is and not trained).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...objectives.base import MetricSpec, Objective, as_tuple
from .assign import anchor_grid
from .decode import boxes_and_scores, decode
from .loss import PROB_EPS, detection_loss
from .metric import coco_map

AGREEMENT_SCORE = 0.25  # dense detections above this stand in for labels in label-free runs
AGREEMENT_FALLBACK = 3  # an image where none reaches it takes the dense model's best few, so the metric stays defined
BOX_DISTILL_GAIN = 5.0
# candidates per image entering NMS when measuring: NMS costs the square of it, and evaluation runs
# every epoch; detections ranked below 1000 add nothing measurable to mAP at 300 kept
PRE_NMS = 1000


class _MapAccumulator:
    """Ground truth and detections of the images seen, in COCO form, for one pycocotools run."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.images, self.annotations, self.detections = [], [], []

    def add_image(self, width: float, height: float) -> int:
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "width": int(width), "height": int(height), "file_name": str(image_id)})
        return image_id

    def add_truth(self, image_id: int, cls: int, xywh, crowd: int) -> None:
        self.annotations.append({"id": len(self.annotations) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                                 "bbox": [float(v) for v in xywh], "area": float(xywh[2] * xywh[3]), "iscrowd": int(crowd)})

    def add_detections(self, image_id: int, boxes, scores, classes, scale=(1.0, 1.0)) -> None:
        sx, sy = scale
        for (x1, y1, x2, y2), s, c in zip(boxes.tolist(), scores.tolist(), classes.tolist()):
            self.detections.append({"image_id": image_id, "category_id": int(c) + 1, "score": float(s),
                                    "bbox": [x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy]})

    def scores(self) -> dict[str, float]:
        truth = {"images": self.images, "annotations": self.annotations,
                 "categories": [{"id": k + 1, "name": str(k)} for k in range(self.num_classes)]}
        return coco_map(truth, self.detections)


class _DetectionObjective(Objective):
    def __init__(self, fmt, input_hw: tuple[int, int]):
        self.fmt, self.input_hw = fmt, input_hw
        self._grid = None

    def grid(self, num_anchors: int):
        if self._grid is None or self._grid[0].shape[0] != num_anchors:
            self._grid = anchor_grid(num_anchors, *self.input_hw)
        return self._grid


class DetectionObjective(_DetectionObjective):
    name = "detection"
    kind = "task"
    primary_metric = "map50_95"

    def metric_specs(self):
        return {"map50_95": MetricSpec("map50_95", True, "fraction", "COCO mAP@0.5:0.95 (pycocotools)"),
                "map50": MetricSpec("map50", True, "fraction", "COCO mAP@0.5 (pycocotools)"),
                "loss": MetricSpec("loss", False, "", "detection loss (GIoU + BCE)")}

    def loss(self, outputs, labels, teacher_outputs=None):
        boxes, scores = boxes_and_scores(as_tuple(outputs), self.fmt)
        centres, strides = self.grid(boxes.shape[1])
        return detection_loss(boxes, scores, labels, centres, strides, self.fmt.scores_are_logits)

    def new_accumulator(self):
        return {"map": _MapAccumulator(self.fmt.num_classes), "loss_sum": 0.0, "images": 0}

    def accumulate(self, acc, outputs, labels, teacher_outputs):
        outputs = as_tuple(outputs)
        acc["loss_sum"] += float(self.loss(outputs, labels)) * labels["classes"].shape[0]
        for i, (boxes, scores, classes) in enumerate(decode(outputs, self.fmt, pre_nms=PRE_NMS)):
            width, height = labels["size"][i].tolist()
            image_id = acc["map"].add_image(width, height)
            for cls, xywh, crowd in zip(labels["classes"][i].tolist(), labels["original"][i].tolist(), labels["crowd"][i].tolist()):
                if cls >= 0:
                    acc["map"].add_truth(image_id, cls, xywh, crowd)
            acc["map"].add_detections(image_id, boxes, scores, classes, labels["scale"][i].tolist())
            acc["images"] += 1

    def finalize(self, acc):
        scores = acc["map"].scores()
        return {"map50_95": scores["map50_95"], "map50": scores["map50"], "loss": acc["loss_sum"] / max(acc["images"], 1)}


class DetectionDistillation(_DetectionObjective):
    """The dense model's raw head outputs teach: its class scores (binary cross-entropy) and, where
    it sees an object, its boxes (L1 in units of the input size, weighted by its best score)."""

    name = "detection-distillation"
    kind = "fidelity"
    needs_teacher = True
    primary_metric = "map50_agreement"

    def metric_specs(self):
        return {"map50_agreement": MetricSpec("map50_agreement", True, "fraction",
                                              f"mAP@0.5 against the dense model's detections (score >= {AGREEMENT_SCORE}, else its {AGREEMENT_FALLBACK} best)"),
                "map50_95_agreement": MetricSpec("map50_95_agreement", True, "fraction",
                                                 "mAP@0.5:0.95 against the dense model's detections"),
                "loss": MetricSpec("loss", False, "", "distillation loss")}

    def loss(self, outputs, labels, teacher_outputs=None):
        s_boxes, s_scores = boxes_and_scores(as_tuple(outputs), self.fmt)
        t_boxes, t_scores = boxes_and_scores(as_tuple(teacher_outputs), self.fmt)
        if self.fmt.scores_are_logits:
            s_scores, t_scores = torch.sigmoid(s_scores), torch.sigmoid(t_scores)
        s_logits = torch.logit(s_scores.clamp(PROB_EPS, 1 - PROB_EPS))
        target = t_scores.detach().clamp(PROB_EPS, 1 - PROB_EPS)
        # cross-entropy minus the teacher's own entropy: a divergence, zero when the scores agree
        entropy = -(target * target.log() + (1 - target) * (1 - target).log())
        cls = (F.binary_cross_entropy_with_logits(s_logits, target, reduction="none") - entropy).sum(-1).mean()
        weight = t_scores.detach().max(-1).values  # [N, A]
        size = float(max(self.input_hw))
        box = ((s_boxes - t_boxes.detach()).abs().sum(-1) / size * weight).sum() / weight.sum().clamp(min=1e-6)
        return cls + BOX_DISTILL_GAIN * box

    def new_accumulator(self):
        return {"map": _MapAccumulator(self.fmt.num_classes), "loss_sum": 0.0, "images": 0}

    def accumulate(self, acc, outputs, labels, teacher_outputs):
        outputs, teacher_outputs = as_tuple(outputs), as_tuple(teacher_outputs)
        acc["loss_sum"] += float(self.loss(outputs, None, teacher_outputs)) * outputs[0].shape[0]
        height, width = self.input_hw
        for (boxes, scores, classes), (t_boxes, t_scores, t_classes) in zip(decode(outputs, self.fmt, pre_nms=PRE_NMS), decode(teacher_outputs, self.fmt, pre_nms=PRE_NMS)):
            image_id = acc["map"].add_image(width, height)
            confident = int((t_scores >= AGREEMENT_SCORE).sum())
            keep = confident if confident else min(AGREEMENT_FALLBACK, len(t_scores))  # decode ranks best first
            for box, cls in zip(t_boxes[:keep].tolist(), t_classes[:keep].tolist()):
                acc["map"].add_truth(image_id, cls, [box[0], box[1], box[2] - box[0], box[3] - box[1]], 0)
            acc["map"].add_detections(image_id, boxes, scores, classes)
            acc["images"] += 1

    def finalize(self, acc):
        scores = acc["map"].scores()
        return {"map50_agreement": scores["map50"], "map50_95_agreement": scores["map50_95"],
                "loss": acc["loss_sum"] / max(acc["images"], 1)}
