"""Stage `data`: training and validation samples, and the task that trains and measures on them.

With --data: the data (split, or --val-data). Without: random inputs, one-shot pruning, and
fidelity to the dense model. The task is looked up by name (compressor/tasks): --task, else the
task that owns the data form (`tusimple:`, `coco:`), else the one the model's metadata names.
"""

from __future__ import annotations

import torch

from ..data import load_model_data, random_model_data, split_indices
from ..data.dataset import example_batch
from ..errors import DataError
from ..metadata import METADATA_PREFIX
from ..objectives.teacher_assisted import TeacherAssisted
from ..tasks import TASK_METADATA_KEY, TASKS, DataRequest, TaskInputs, choose_task, resolve_task_name, task_for_data
from .state import Prepared, RunState
from .stages import register_stage


@register_stage("data")
def prepare_data(state: RunState) -> Prepared:
    opts, loaded = state.options.source, state.loaded
    seed, method = state.options.training.seed, loaded.method
    num_classes = num_classes_of(loaded.module)
    metadata = {k.removeprefix(METADATA_PREFIX): v for k, v in loaded.metadata.items()}
    task_name, why = resolve_task_name(opts.task, loaded.data_spec, metadata.get(TASK_METADATA_KEY))
    shapes = output_shapes(loaded.dense, random_model_data(loaded.inputs, 1, seed))

    def read(spec: str, limit: int | None):
        owner = task_for_data(spec)
        if owner is None:
            return load_model_data(spec, loaded.inputs, preprocess=loaded.preprocess, num_classes=num_classes, limit=limit, seed=seed)
        if owner != task_for_data(loaded.data_spec):
            raise DataError(f"--data and --val-data must be data of the same task; {spec.split(':', 1)[0]}: is {owner} data")
        if len(loaded.inputs) != 1:
            raise DataError(f"{spec.split(':', 1)[0]}: data feeds single-input models; this one has {len(loaded.inputs)} inputs")
        name, shape, dtype = loaded.inputs[0]
        return TASKS.get(owner)().read_data(DataRequest(spec.split(":", 1)[1], spec, name, list(shape), dtype, loaded.preprocess,
                                                        metadata, limit, seed, shapes))

    if loaded.data_spec is not None:
        dataset = state.timed("data_s", lambda: read(loaded.data_spec, opts.limit))
        labelled = dataset.labelled
        if opts.val_data is not None:
            train_data = dataset
            val_data = state.timed("data_s", lambda: read(opts.val_data, None))
            if val_data.labelled != labelled:
                raise DataError("--data and --val-data must both have labels or both have none")
            split = "--val-data"
        else:
            train_idx, val_idx = split_indices(len(dataset), opts.val_fraction, seed)
            train_data, val_data = dataset.subset(train_idx), dataset.subset(val_idx)
            split = "validation split"
        info = {"description": dataset.description, "train": len(train_data), "val": len(val_data), "labelled": labelled}
        if opts.val_data is not None:
            info["val_description"] = val_data.description
    else:
        if method.requires_data():
            raise DataError(f"method {method.name!r} with these options trains the model: give --data (or --epochs 0 for one-shot pruning)")
        train_data, labelled = None, False
        val_data = random_model_data(loaded.inputs, opts.random_samples, seed)
        info = {"description": val_data.description, "train": 0, "val": len(val_data), "labelled": False}
        described = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s, _ in loaded.inputs)
        state.notes.append(f"No data: pruning is one-shot, and metrics are fidelity to the dense model on "
                           f"{opts.random_samples} random inputs ({described}).")
        split = "random inputs"

    inputs = TaskInputs(labelled, num_classes, loaded.module.output_names, shapes,
                        tuple(loaded.inputs[0][1]), metadata)
    if why == "the model's metadata" and not labelled and not TASKS.get(task_name).label_free:
        task_name, why = "auto", ""  # made for a labelled task, given data without labels: the dense model teaches
    if why and why != "--task":
        state.notes.append(f"Task {task_name}, from {why}.")
    task = choose_task(task_name, inputs)
    objective = task.objective(inputs)
    if objective.kind == "fidelity" and loaded.data_spec is not None:
        state.notes.append(("The data has no labels: " if not labelled else f"Task {task.name}: ")
                           + "the dense model teaches the pruned one (distillation); metrics are fidelity to it.")
    weight = state.options.training.distill_weight
    if weight and objective.kind == "task":
        objective = TeacherAssisted(objective, task.teacher_objective(inputs), weight)
        state.notes.append(f"Training loss: the labels' plus {weight:g} x distillation from the dense model "
                           f"({objective.distillation.name}); metrics against the labels.")
    elif weight:
        state.notes.append("--distill-weight is not used: without labels the run already learns from the dense model alone.")
    augmentation = task.augmentation(inputs) if state.options.training.augment and train_data is not None else None
    if augmentation is not None:
        state.notes.append(f"Training augmentation: the {task.name} task's own ({type(augmentation).__name__.lower()}; "
                           "--no-augment turns it off).")
    return Prepared(train_data, val_data, labelled, info, task, objective, split, augmentation)


def output_shapes(dense, data) -> list[tuple[int, ...]]:
    """The shapes of the module's outputs on one sample: what a task reads the output layout from
    (declared shapes are often symbolic)."""
    if data is None or len(data) == 0:
        return []
    with torch.no_grad():
        outputs = dense(*example_batch(data, 1))
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return [tuple(o.shape) for o in outputs if isinstance(o, torch.Tensor)]


def num_classes_of(module) -> int | None:
    """Classes of a classifier: the first output the module trains on, declared as [batch, K] with K >= 2."""
    graph = module.onnx_model.graph
    declared = {v.name: v for v in list(graph.output) + list(graph.value_info)}
    output = declared.get(module.output_names[0])
    if output is None:
        return None
    dims = output.type.tensor_type.shape.dim
    if len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value >= 2:
        return int(dims[1].dim_value)
    return None
