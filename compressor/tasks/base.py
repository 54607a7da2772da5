"""The task interface and its registry."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..errors import DataError
from ..objectives import Objective
from ..registry import Registry

BUILTIN_TASKS = ("classification", "distillation")
AUTO = "auto"


def _load_builtin_tasks() -> None:
    for name in BUILTIN_TASKS:  # each registers itself on import
        importlib.import_module(f"{__package__}.{name}")


TASKS: Registry[type["Task"]] = Registry("task", loader=_load_builtin_tasks)
register_task = TASKS.register


@dataclass(frozen=True)
class TaskInputs:
    """What a task needs to know to build its objective."""

    labelled: bool  # the data carries labels
    num_classes: int | None  # classes of a [batch, K] first output, else None
    output_names: list[str]


class Task(ABC):
    name: str = ""
    labels: str = ""  # the label format, in words, for help and errors
    uses_labels: bool = True  # False: labels in the data are ignored (the dense model is the reference)

    @abstractmethod
    def objective(self, inputs: TaskInputs) -> Objective:
        """The objective for this model and data; a DataError when they do not fit the task."""


def choose_task(name: str, inputs: TaskInputs) -> Task:
    """The task called `name`, or for "auto" classification with labels and distillation without."""
    if name == AUTO:
        name = "classification" if inputs.labelled else "distillation"
    task = TASKS.get(name)()
    if task.uses_labels and not inputs.labelled:
        raise DataError(f"task {task.name!r} needs labels ({task.labels}); the data has none")
    return task
