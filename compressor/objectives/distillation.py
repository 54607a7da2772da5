"""Label-free training: the dense model teaches the pruned one.

Classifiers (2-D logits) are matched with KL divergence between softened distributions;
any other output with mean squared error. Metrics measure fidelity to the teacher: top-1
agreement (classifiers), relative L2 error and cosine similarity over all float outputs, and
the same per output plus each output's worst channel (see fidelity.py), so that one collapsed
head cannot hide inside the whole-model numbers. Integer outputs (indices, counts) are ignored.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .base import MetricSpec, Objective, as_tuple
from .fidelity import OutputFidelity, OutputStats, float_pairs


def is_classifier_output(t: torch.Tensor) -> bool:
    return t.dim() == 2 and t.shape[1] >= 2


class DistillationObjective(Objective):
    name = "distillation"
    kind = "fidelity"
    needs_teacher = True

    def __init__(self, classifier: bool, temperature: float = 2.0, output_names: Sequence[str] | None = None):
        self.classifier = classifier
        self.temperature = temperature
        self.output_names = list(output_names) if output_names else None  # metric keys; default output0, output1, …
        self.primary_metric = "top1_agreement" if classifier else "relative_l2"

    def metric_specs(self):
        return {
            "top1_agreement": MetricSpec("top1_agreement", True, "fraction", "share of samples whose top-1 class matches the dense model's"),
            "relative_l2": MetricSpec("relative_l2", False, "", "||pruned - dense|| / ||dense|| over the float outputs"),
            "cosine": MetricSpec("cosine", True, "", "cosine similarity to the dense model's outputs"),
            "worst_channel_relative_l2": MetricSpec("worst_channel_relative_l2", False, "", "relative L2 of the output's worst channel group"),
        }

    def _name(self, index: int) -> str:
        if self.output_names and index < len(self.output_names):
            return self.output_names[index]
        return f"output{index}"

    def loss(self, outputs, labels, teacher_outputs=None):
        student, teacher = as_tuple(outputs), as_tuple(teacher_outputs)
        if self.classifier:
            t = self.temperature
            return F.kl_div(
                F.log_softmax(student[0] / t, dim=1), F.log_softmax(teacher[0] / t, dim=1),
                reduction="batchmean", log_target=True,
            ) * (t * t)
        pairs = float_pairs(student, teacher)
        if not pairs:
            raise ValueError("the model has no floating-point output to distil")
        return sum(F.mse_loss(s, w) for _, s, w in pairs)

    def new_accumulator(self):
        return {"agree": 0, "count": 0, "outputs": {}}  # outputs: index -> OutputStats

    def accumulate(self, acc, outputs, labels, teacher_outputs):
        student, teacher = as_tuple(outputs), as_tuple(teacher_outputs)
        if self.classifier:
            acc["agree"] += int((student[0].argmax(1) == teacher[0].argmax(1)).sum())
            acc["count"] += student[0].shape[0]
        for i, s, t in float_pairs(student, teacher):
            stats = acc["outputs"].setdefault(i, OutputStats(self._name(i)))
            stats.add(s, t)

    def per_output(self, acc) -> list[OutputFidelity]:
        """Each float output's fidelity, with its per-channel errors, in output order."""
        return [acc["outputs"][i].summary() for i in sorted(acc["outputs"])]

    def finalize(self, acc):
        metrics = {}
        if self.classifier:
            metrics["top1_agreement"] = acc["agree"] / max(acc["count"], 1)
        # whole-model numbers: all float outputs pooled, as before per-output metrics existed
        sums = [st.sums.sum(1) for st in acc["outputs"].values()]
        diff_sq, ref_sq, student_sq, dot = (torch.stack(sums).sum(0).tolist() if sums else [0.0, 0.0, 0.0, 0.0])
        metrics["relative_l2"] = (diff_sq / max(ref_sq, 1e-30)) ** 0.5
        metrics["cosine"] = dot / max((ref_sq * student_sq) ** 0.5, 1e-30)
        for out in self.per_output(acc):
            metrics[f"relative_l2/{out.name}"] = out.relative_l2
            metrics[f"cosine/{out.name}"] = out.cosine
            if out.channel_axis is not None:
                metrics[f"worst_channel_relative_l2/{out.name}"] = out.worst_relative_l2
        return metrics
