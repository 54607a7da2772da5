"""Label-free: the dense model teaches the pruned one; metrics are fidelity to it."""

from __future__ import annotations

from ..objectives import DistillationObjective
from .base import Task, TaskInputs, register_task


@register_task("distillation")
class Distillation(Task):
    labels = "none: the dense model's outputs are the reference"
    uses_labels = False

    def objective(self, inputs: TaskInputs) -> DistillationObjective:
        return DistillationObjective(classifier=inputs.num_classes is not None, output_names=inputs.output_names)
