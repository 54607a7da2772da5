"""The objective interface, its registry, and evaluation over a data loader."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MetricSpec:
    """What a metric name means: its direction and unit. Reports format by the spec, never by
    guessing from the name; bounds (OLMP's allowed drop) are read in the spec's unit."""

    name: str
    higher_is_better: bool
    unit: str = ""  # "fraction": a share in [0, 1], shown as a percentage and bounded in points; "": a plain number
    description: str = ""

    def to_dict(self) -> dict:
        return {"higher_is_better": self.higher_is_better, "unit": self.unit, "description": self.description}


def as_tuple(outputs) -> tuple[torch.Tensor, ...]:
    return outputs if isinstance(outputs, tuple) else (outputs,)


class Objective(ABC):
    """Loss for training plus metrics for reporting.

    `kind` is "task" (measured against labels) or "fidelity" (measured against the dense
    model). `needs_teacher` objectives receive the dense model's outputs for each batch.
    """

    name: str = ""
    kind: str = "task"
    needs_teacher: bool = False
    primary_metric: str = "loss"

    def metric_specs(self) -> dict[str, MetricSpec]:
        """The metrics `finalize` reports, by name; per-output variants ("relative_l2/boxes") share
        the spec of the name before the slash."""
        return {"loss": MetricSpec("loss", False)}

    def spec(self, name: str) -> MetricSpec:
        specs = self.metric_specs()
        return specs.get(name) or specs.get(name.split("/", 1)[0]) or MetricSpec(name, False)

    @property
    def higher_is_better(self) -> bool:
        return self.spec(self.primary_metric).higher_is_better

    @abstractmethod
    def loss(self, outputs, labels: torch.Tensor | None, teacher_outputs=None) -> torch.Tensor: ...

    @abstractmethod
    def new_accumulator(self) -> dict: ...

    @abstractmethod
    def accumulate(self, acc: dict, outputs, labels, teacher_outputs) -> None: ...

    @abstractmethod
    def finalize(self, acc: dict) -> dict[str, float]: ...


def evaluate(model, loader, objective: Objective, teacher=None) -> dict[str, float]:
    """Metrics of `model` over `loader` (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    acc = objective.new_accumulator()
    with torch.no_grad():
        for batch in loader:
            x, labels = batch[0], (batch[1] if len(batch) > 1 else None)
            outputs = model(x)
            # an objective that trains against the teacher may measure without it (TeacherAssisted)
            teacher_outputs = teacher(x) if getattr(objective, "metrics_need_teacher", objective.needs_teacher) else None
            objective.accumulate(acc, outputs, labels, teacher_outputs)
    model.train(was_training)
    return objective.finalize(acc)
