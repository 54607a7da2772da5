"""Objectives: what the pruned model is trained to do and how it is measured.

An objective turns a batch (and, for distillation, the dense teacher's outputs) into a loss and
accumulates metrics. Workloads add their own (lane detection, detection) by registering here.
"""

from .base import Objective, evaluate, get_objective, register_objective
from .classification import ClassificationObjective
from .distillation import DistillationObjective

__all__ = ["Objective", "evaluate", "get_objective", "register_objective", "ClassificationObjective", "DistillationObjective"]
