"""Stage `data`: training and validation samples, and the task that trains and measures on them.

With --data: the data (split, or --val-data). Without: random inputs, one-shot pruning, and
fidelity to the dense model. The task is looked up by name (compressor/tasks).
"""

from __future__ import annotations

from ..data import load_model_data, random_model_data, split_indices
from ..errors import DataError
from ..tasks import TaskInputs, choose_task
from .state import Prepared, RunState
from .stages import register_stage


@register_stage("data")
def prepare_data(state: RunState) -> Prepared:
    opts, loaded = state.options.source, state.loaded
    seed, method = state.options.training.seed, loaded.method
    num_classes = num_classes_of(loaded.module)
    if loaded.data_spec is not None:
        dataset = state.timed("data_s", lambda: load_model_data(
            loaded.data_spec, loaded.inputs, preprocess=loaded.preprocess, num_classes=num_classes, limit=opts.limit, seed=seed))
        labelled = dataset.labelled
        if opts.val_data is not None:
            train_data = dataset
            val_data = state.timed("data_s", lambda: load_model_data(
                opts.val_data, loaded.inputs, preprocess=loaded.preprocess, num_classes=num_classes, seed=seed))
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

    task = choose_task(opts.task, TaskInputs(labelled, num_classes, loaded.module.output_names))
    objective = task.objective(TaskInputs(labelled, num_classes, loaded.module.output_names))
    if objective.kind == "fidelity" and loaded.data_spec is not None:
        state.notes.append(("The data has no labels: " if not labelled else f"Task {task.name}: ")
                           + "the dense model teaches the pruned one (distillation); metrics are fidelity to it.")
    return Prepared(train_data, val_data, labelled, info, task, objective, split)


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
