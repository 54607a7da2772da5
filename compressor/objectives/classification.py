"""Supervised classification: cross-entropy on labels, accuracy as the metric."""

from __future__ import annotations

import torch.nn.functional as F

from .base import MetricSpec, Objective, as_tuple


class ClassificationObjective(Objective):
    name = "classification"
    kind = "task"
    primary_metric = "accuracy"

    def metric_specs(self):
        return {"accuracy": MetricSpec("accuracy", True, "fraction", "top-1 accuracy against the labels"),
                "loss": MetricSpec("loss", False, "", "cross-entropy")}

    def loss(self, outputs, labels, teacher_outputs=None):
        return F.cross_entropy(as_tuple(outputs)[0], labels)

    def new_accumulator(self):
        return {"correct": 0, "count": 0, "loss_sum": 0.0}

    def accumulate(self, acc, outputs, labels, teacher_outputs):
        logits = as_tuple(outputs)[0]
        acc["correct"] += int((logits.argmax(dim=1) == labels).sum())
        acc["count"] += labels.numel()
        acc["loss_sum"] += float(F.cross_entropy(logits, labels, reduction="sum"))

    def finalize(self, acc):
        n = max(acc["count"], 1)
        return {"accuracy": acc["correct"] / n, "loss": acc["loss_sum"] / n}
