"""Labels and the dense model together: the task's supervised loss plus a weighted distillation
loss against the dense model's outputs (`--distill-weight`).

A pruned network recovering in fine-tuning has two references: the labels, and the dense network
it was cut from, whose outputs carry more per sample than a label does (a detector's scores on
every anchor, not only the assigned ones). Metrics stay the supervised objective's: the run is
still judged against the labels; only training sees the teacher.
"""

from __future__ import annotations

from .base import Objective


class TeacherAssisted(Objective):
    kind = "task"
    needs_teacher = True  # training reads the dense model's outputs for each batch
    metrics_need_teacher = False  # evaluation does not: the metrics are the supervised ones

    def __init__(self, supervised: Objective, distillation: Objective, weight: float):
        if supervised.kind != "task" or not weight > 0:
            raise ValueError("TeacherAssisted needs a labelled objective and a positive weight")
        self.supervised, self.distillation, self.weight = supervised, distillation, weight
        self.name = f"{supervised.name}+distillation"
        self.primary_metric = supervised.primary_metric

    def metric_specs(self):
        return self.supervised.metric_specs()

    def loss(self, outputs, labels, teacher_outputs=None):
        return (self.supervised.loss(outputs, labels, None)
                + self.weight * self.distillation.loss(outputs, None, teacher_outputs))

    def new_accumulator(self):
        return self.supervised.new_accumulator()

    def accumulate(self, acc, outputs, labels, teacher_outputs):
        self.supervised.accumulate(acc, outputs, labels, None)

    def finalize(self, acc):
        return self.supervised.finalize(acc)
