"""Label-free training: the dense model teaches the pruned one.

Classifiers (2-D logits) are matched with KL divergence between softened distributions;
any other output with mean squared error. Metrics measure fidelity to the teacher: top-1
agreement (classifiers), relative L2 error and cosine similarity over all outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Objective, as_tuple, register_objective


def is_classifier_output(t: torch.Tensor) -> bool:
    return t.dim() == 2 and t.shape[1] >= 2


@register_objective("distillation")
class DistillationObjective(Objective):
    name = "distillation"
    kind = "fidelity"
    needs_teacher = True

    def __init__(self, classifier: bool, temperature: float = 2.0):
        self.classifier = classifier
        self.temperature = temperature
        self.primary_metric = "top1_agreement" if classifier else "relative_l2"
        self.higher_is_better = classifier

    def loss(self, outputs, labels, teacher_outputs=None):
        student, teacher = as_tuple(outputs), as_tuple(teacher_outputs)
        if self.classifier:
            t = self.temperature
            return F.kl_div(
                F.log_softmax(student[0] / t, dim=1), F.log_softmax(teacher[0] / t, dim=1),
                reduction="batchmean", log_target=True,
            ) * (t * t)
        return sum(F.mse_loss(s, w) for s, w in zip(student, teacher))

    def new_accumulator(self):
        return {"agree": 0, "count": 0, "diff_sq": 0.0, "ref_sq": 0.0, "dot": 0.0, "student_sq": 0.0}

    def accumulate(self, acc, outputs, labels, teacher_outputs):
        student, teacher = as_tuple(outputs), as_tuple(teacher_outputs)
        if self.classifier:
            acc["agree"] += int((student[0].argmax(1) == teacher[0].argmax(1)).sum())
            acc["count"] += student[0].shape[0]
        for s, t in zip(student, teacher):
            s, t = s.double().reshape(-1), t.double().reshape(-1)
            acc["diff_sq"] += float((s - t).square().sum())
            acc["ref_sq"] += float(t.square().sum())
            acc["student_sq"] += float(s.square().sum())
            acc["dot"] += float((s * t).sum())

    def finalize(self, acc):
        metrics = {}
        if self.classifier:
            metrics["top1_agreement"] = acc["agree"] / max(acc["count"], 1)
        metrics["relative_l2"] = (acc["diff_sq"] / max(acc["ref_sq"], 1e-30)) ** 0.5
        metrics["cosine"] = acc["dot"] / max((acc["ref_sq"] * acc["student_sq"]) ** 0.5, 1e-30)
        return metrics
