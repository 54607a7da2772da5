"""Objectives: what the pruned model is trained on and how it is measured.

An objective turns a batch (and, for distillation, the dense teacher's outputs) into a loss and
accumulates metrics, each described by a MetricSpec. Tasks (compressor/tasks) pick the objective.
"""

from .base import MetricSpec, Objective, evaluate
from .classification import ClassificationObjective
from .distillation import DistillationObjective

__all__ = ["MetricSpec", "Objective", "evaluate", "ClassificationObjective", "DistillationObjective"]
