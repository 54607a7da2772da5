"""The objective interface, its registry, and evaluation over a data loader."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import torch

from ..errors import ConfigError

_OBJECTIVES: dict[str, Callable[..., "Objective"]] = {}


def register_objective(name: str):
    def wrap(factory):
        _OBJECTIVES[name] = factory
        return factory

    return wrap


def get_objective(name: str, **options) -> "Objective":
    if name not in _OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; known: {', '.join(sorted(_OBJECTIVES))}")
    return _OBJECTIVES[name](**options)


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
    higher_is_better: bool = False

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
            teacher_outputs = teacher(x) if objective.needs_teacher else None
            objective.accumulate(acc, outputs, labels, teacher_outputs)
    model.train(was_training)
    return objective.finalize(acc)
