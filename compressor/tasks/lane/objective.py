"""Lane objectives: the UFLD losses against TuSimple labels, or the dense model's row-anchor
distributions without labels; both measured with the official TuSimple metric.

With labels the metric compares decoded lanes with the ground truth at its `h_samples`. Without,
it compares them with the dense model's decoded lanes ("lane agreement"): the same metric, the
dense model standing in for the annotator. Latency is measured by the pipeline's own protocol, so
every image enters the metric with run_time 0 (the metric's 200 ms rule never fires).
"""

from __future__ import annotations

import torch.nn.functional as F

from ...objectives.base import MetricSpec, Objective, as_tuple
from .geometry import LaneGeometry
from .losses import ufld_loss
from .metric import image_scores


def _sum_scores(acc: dict, pred_lanes, gt_lanes, h_samples) -> None:
    a, fp, fn = image_scores(pred_lanes, gt_lanes, h_samples, 0.0)
    acc["accuracy"] += a
    acc["fp"] += fp
    acc["fn"] += fn
    acc["images"] += 1


class LaneObjective(Objective):
    name = "lane"
    kind = "task"
    primary_metric = "accuracy"

    def __init__(self, geometry: LaneGeometry, sim_weight: float = 1.0, shape_weight: float = 0.0):
        self.geometry, self.sim_weight, self.shape_weight = geometry, sim_weight, shape_weight

    def metric_specs(self):
        return {"accuracy": MetricSpec("accuracy", True, "fraction", "TuSimple accuracy (official metric)"),
                "fp": MetricSpec("fp", False, "fraction", "TuSimple false-positive rate"),
                "fn": MetricSpec("fn", False, "fraction", "TuSimple false-negative rate"),
                "loss": MetricSpec("loss", False, "", "UFLD loss (focal + similarity)")}

    def loss(self, outputs, labels, teacher_outputs=None):
        return ufld_loss(as_tuple(outputs)[0], labels["cls"], self.geometry.griding_num, self.sim_weight, self.shape_weight)

    def new_accumulator(self):
        return {"accuracy": 0.0, "fp": 0.0, "fn": 0.0, "images": 0, "loss_sum": 0.0}

    def accumulate(self, acc, outputs, labels, teacher_outputs):
        logits = as_tuple(outputs)[0]
        decoded = self.geometry.decode(logits)
        counts = labels["counts"].tolist()
        for i, (num_lanes, num_h) in enumerate(counts):
            h_samples = [int(v) for v in labels["h_samples"][i, :num_h].tolist()]
            gt = [[int(v) for v in lane[:num_h]] for lane in labels["lanes"][i, :num_lanes].tolist()]
            _sum_scores(acc, self.geometry.to_h_samples(decoded[i], h_samples), gt, h_samples)
        acc["loss_sum"] += float(self.loss(logits, labels)) * logits.shape[0]

    def finalize(self, acc):
        n = max(acc["images"], 1)
        return {"accuracy": acc["accuracy"] / n, "fp": acc["fp"] / n, "fn": acc["fn"] / n, "loss": acc["loss_sum"] / n}


class LaneDistillation(Objective):
    """KL divergence between the dense and pruned cell distributions of every row anchor and lane."""

    name = "lane-distillation"
    kind = "fidelity"
    needs_teacher = True
    primary_metric = "lane_agreement"

    def __init__(self, geometry: LaneGeometry, temperature: float = 1.0):
        self.geometry, self.temperature = geometry, temperature

    def metric_specs(self):
        return {"lane_agreement": MetricSpec("lane_agreement", True, "fraction",
                                             "TuSimple accuracy against the dense model's decoded lanes"),
                "cell_agreement": MetricSpec("cell_agreement", True, "fraction",
                                             "share of row anchors and lanes whose arg-max class matches the dense model's"),
                "kl": MetricSpec("kl", False, "", "KL divergence from the dense model's distributions")}

    def loss(self, outputs, labels, teacher_outputs=None):
        t = self.temperature
        student, teacher = as_tuple(outputs)[0], as_tuple(teacher_outputs)[0]
        kl = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), reduction="none", log_target=True)
        return kl.sum(1).mean() * (t * t)

    def new_accumulator(self):
        return {"accuracy": 0.0, "fp": 0.0, "fn": 0.0, "images": 0, "agree": 0, "cells": 0, "kl_sum": 0.0}

    def accumulate(self, acc, outputs, labels, teacher_outputs):
        student, teacher = as_tuple(outputs)[0], as_tuple(teacher_outputs)[0]
        anchors = list(self.geometry.row_anchors)
        for s, t in zip(self.geometry.decode(student), self.geometry.decode(teacher)):
            _sum_scores(acc, self.geometry.to_h_samples(s, anchors), self.geometry.to_h_samples(t, anchors), anchors)
        acc["agree"] += int((student.argmax(1) == teacher.argmax(1)).sum())
        acc["cells"] += student[:, 0].numel()
        acc["kl_sum"] += float(self.loss(student, None, teacher)) * student.shape[0]

    def finalize(self, acc):
        n = max(acc["images"], 1)
        return {"lane_agreement": acc["accuracy"] / n, "cell_agreement": acc["agree"] / max(acc["cells"], 1),
                "kl": acc["kl_sum"] / n}
