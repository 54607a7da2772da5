"""Classification with labels: cross-entropy, top-1 accuracy."""

from __future__ import annotations

from ..errors import DataError
from ..objectives import ClassificationObjective
from .base import Task, TaskInputs, register_task


@register_task("classification")
class Classification(Task):
    labels = "one integer class index per sample"

    def objective(self, inputs: TaskInputs) -> ClassificationObjective:
        if inputs.num_classes is None:
            raise DataError("the data has labels but the model's first output is not [batch, classes] logits")
        return ClassificationObjective()
