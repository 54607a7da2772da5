"""The task interface and its registry.

A task owns what the model does: the data forms it reads itself (`tusimple:DIR`, `coco:FILE`),
the objective it trains with labels and the one it trains without (the dense model teaching),
its metric and the decoding of the model's outputs that the metric needs. The pipeline asks the
registry, never a task by name, so a new task is one module plus a `@register_task`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace

from ..errors import ConfigError, DataError
from ..objectives import Objective
from ..registry import Registry

BUILTIN_TASKS = ("classification", "distillation", "lane", "detection")
AUTO = "auto"
TASK_METADATA_KEY = "task"  # under onnx_compressor.: the task a model the project exported was made for


def _load_builtin_tasks() -> None:
    for name in BUILTIN_TASKS:  # each registers itself on import
        importlib.import_module(f"{__package__}.{name}")


TASKS: Registry[type["Task"]] = Registry("task", loader=_load_builtin_tasks)
register_task = TASKS.register


@dataclass(frozen=True)
class DataRequest:
    """What a task's own reader needs to turn files into model inputs."""

    body: str  # the spec after its prefix, e.g. the folder of `tusimple:DIR`
    spec: str  # the spec as given, for messages
    input_name: str
    input_shape: list[int]  # with the batch
    input_dtype: object  # torch dtype
    preprocess: object | None  # data.Preprocess
    metadata: dict[str, str]  # the model's metadata_props (row anchors, class names, ...)
    limit: int | None
    seed: int
    output_shapes: list[tuple[int, ...]]  # the module's outputs on one sample (the task reads its layout there)


@dataclass(frozen=True)
class TaskInputs:
    """What a task needs to know to build its objective."""

    labelled: bool  # the data carries labels
    num_classes: int | None  # classes of a [batch, K] first output, else None
    output_names: list[str]
    output_shapes: list[tuple[int, ...]] = ()  # the module's outputs on one sample, from a forward pass
    input_shape: tuple[int, ...] = ()  # the model input at batch 1
    metadata: dict[str, str] = field(default_factory=dict)  # the model's, keys without the onnx_compressor. prefix


class Task(ABC):
    name: str = ""
    labels: str = ""  # the label format, in words, for help and errors
    uses_labels: bool = True  # False: labels in the data are ignored (the dense model is the reference)
    data_prefixes: tuple[str, ...] = ()  # `--data PREFIX:...` forms this task reads itself
    label_free: bool = False  # True: without labels the task trains by distillation of its own kind
    # the plan's default leaves the first conv and a final classifier dense (small, sensitive); a
    # task whose last layer is where the weights are says False, and why
    ends_dense_by_default: bool = True
    ends_reason: str = ""

    @abstractmethod
    def objective(self, inputs: TaskInputs) -> Objective:
        """The objective for this model and data; a DataError when they do not fit the task."""

    def augmentation(self, inputs: TaskInputs):
        """The training augmentation this task takes without changing what a label means, as a
        callable (inputs, labels or None, generator) -> (inputs, labels); None: none (a flipped
        digit is another digit)."""
        return None

    def teacher_objective(self, inputs: TaskInputs) -> Objective:
        """What the pruned model learns from the dense one beside the labels (--distill-weight): a
        label-free task's own distillation, else the generic one (KL on logits, MSE otherwise)."""
        if self.label_free:
            return self.objective(replace(inputs, labelled=False))
        from ..objectives.distillation import DistillationObjective

        return DistillationObjective(classifier=inputs.num_classes is not None, output_names=inputs.output_names)

    def read_data(self, request: DataRequest):
        """A `LoadedDataset` for one of `data_prefixes` (only called for those)."""
        raise NotImplementedError(f"task {self.name} reads no data of its own")


def task_for_data(spec: str | None) -> str | None:
    """The task that reads `spec` itself (its prefix, e.g. `coco:`), or None for the generic forms."""
    if not spec or ":" not in spec:
        return None
    prefix = spec.split(":", 1)[0].strip().lower()
    for name in TASKS.names():
        if prefix in TASKS.get(name).data_prefixes:
            return name
    return None


def resolve_task_name(requested: str, data_spec: str | None, metadata_task: str | None) -> tuple[str, str]:
    """(task name, why): --task, else the data form's owner, else the model's metadata, else auto.

    A --task that contradicts the data form fails here, before anything is read."""
    owner = task_for_data(data_spec)
    if requested != AUTO:
        TASKS.get(requested)
        if owner is not None and owner != requested:
            raise ConfigError(f"--data {data_spec.split(':', 1)[0]}:... is {owner} data; --task {requested} cannot read it")
        return requested, "--task"
    if owner is not None:
        return owner, f"the data form {data_spec.split(':', 1)[0]}:"
    if metadata_task and TASKS.find(metadata_task) is not None:
        return metadata_task, "the model's metadata"
    return AUTO, ""


def choose_task(name: str, inputs: TaskInputs) -> Task:
    """The task called `name`, or for "auto" classification with labels and distillation without."""
    if name == AUTO:
        name = "classification" if inputs.labelled else "distillation"
    task = TASKS.get(name)()
    if task.uses_labels and not inputs.labelled and not task.label_free:
        raise DataError(f"task {task.name!r} needs labels ({task.labels}); the data has none")
    return task
