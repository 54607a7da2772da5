"""Tasks: what the model does and how its pruned copy is trained and measured, looked up by name.

A task names its label format, reads the data forms it owns (`tusimple:DIR`, `coco:FILE`),
checks that the model and the data fit it, and builds the objective (loss and metrics, each
with a MetricSpec), with labels and, for tasks that can, without. `auto` picks the owner of the
data form, else the task the model's metadata names, else classification for labelled data and
distillation otherwise. Built in: classification, distillation, lane (UFLD on TuSimple) and
detection (YOLO-style on COCO).
"""

from .base import (TASK_METADATA_KEY, TASKS, DataRequest, Task, TaskInputs, choose_task, register_task,
                   resolve_task_name, task_for_data)

__all__ = ["TASK_METADATA_KEY", "TASKS", "DataRequest", "Task", "TaskInputs", "choose_task", "register_task",
           "resolve_task_name", "task_for_data"]
