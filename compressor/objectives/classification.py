"""Supervised classification: cross-entropy on labels, accuracy as the metric."""

from __future__ import annotations

import torch.nn.functional as F

from .base import Objective, as_tuple, register_objective


@register_objective("classification")
class ClassificationObjective(Objective):
    name = "classification"
    kind = "task"
    primary_metric = "accuracy"
    higher_is_better = True

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
