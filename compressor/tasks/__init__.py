"""Tasks: what the model does and how its pruned copy is trained and measured, looked up by name.

A task names its label format, checks that the model and the data fit it, and builds the
objective (loss and metrics, each with a MetricSpec). `auto` picks classification for labelled
data and distillation otherwise. Lane detection and object detection register here too.
"""

from .base import TASKS, Task, TaskInputs, choose_task, register_task

__all__ = ["TASKS", "Task", "TaskInputs", "choose_task", "register_task"]
