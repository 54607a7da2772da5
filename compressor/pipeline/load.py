"""Stage `load`: the model imported twice, its inputs' shapes and dtypes, its batch, and the method.

Shapes come from --input-shape, else the data, else --preprocess, else the model's metadata; the
batch the model really runs at is probed (onnx_import/batching.py).
"""

from __future__ import annotations

import torch

from ..data import parse_preprocess
from ..data.shape_hints import shape_hints
from ..errors import ConfigError
from ..metadata import METADATA_PREFIX
from ..methods import get_method
from ..onnx_import import load_onnx
from ..onnx_import.batching import probe_batch
from ..onnx_import.inputs import input_dtypes, random_inputs, resolve_input_shapes
from ..tasks import task_for_data
from .state import Loaded, RunState
from .stages import register_stage


@register_stage("load")
def load(state: RunState) -> Loaded:
    opts = state.options
    module = state.timed("import_s", lambda: load_onnx(state.path))
    dense = state.timed("import_s", lambda: load_onnx(state.path)).eval()
    for p in dense.parameters():
        p.requires_grad_(False)
    if not module.weights:
        raise ConfigError(f"{state.path}: the model has no prunable weights (no Conv, ConvTranspose, Gemm or MatMul with a constant weight)")
    metadata = {p.key: p.value for p in module.onnx_model.metadata_props}

    data_spec, preprocess = opts.source.data, opts.source.preprocess
    if data_spec is None and metadata.get(METADATA_PREFIX + "default_data"):
        data_spec = metadata[METADATA_PREFIX + "default_data"]
        preprocess = preprocess or metadata.get(METADATA_PREFIX + "default_preprocess") or None
        state.notes.append(f"Data '{data_spec}' comes from the model's metadata (no --data given).")
    if (preprocess is None and metadata.get(METADATA_PREFIX + "preprocess")
            and not (data_spec or "").strip().lower().endswith(".npz")):  # .npz holds model inputs as they are
        # the normalisation the model was trained with (the project's reference models record it)
        preprocess = metadata[METADATA_PREFIX + "preprocess"]
        state.notes.append(f"Preprocessing '{preprocess}' comes from the model's metadata (no --preprocess given).")
    # the method first: its options are refused before any data is read
    method = get_method(opts.method, has_training_data=data_spec is not None, **_method_keywords(opts))

    parsed_preprocess = parse_preprocess(preprocess) if preprocess else None
    # a task's own data form (`coco:...`) is read by the task, which resizes to the model's size
    hints = shape_hints(None if task_for_data(data_spec) else data_spec, [(n, module.input_shapes.get(n, [])) for n in module.input_names],
                        parsed_preprocess, metadata)
    given = opts.source.input_shapes
    shapes = resolve_input_shapes(module, given, batch=1, hints=hints)
    for name, (_, source) in hints.items():
        if given is None or name not in given:
            declared = module.input_shapes.get(name, [])
            if any(not (isinstance(d, int) and d > 0) for d in declared[1:]) or not declared:
                state.notes.append(f"Input {name!r} runs at {'x'.join(map(str, shapes[name][1:]))} per sample, from {source}.")
    dtypes = input_dtypes(module)
    inputs = [(name, shapes[name], dtypes[name]) for name in module.input_names]

    def example_inputs(batch: int) -> list[torch.Tensor]:
        return random_inputs(module, {n: [batch, *s[1:]] for n, s in shapes.items()}, batch=batch, seed=opts.training.seed)

    batch_info = state.timed("import_s", lambda: probe_batch(dense, example_inputs))
    module.batch_chunk = dense.batch_chunk = batch_info.chunk
    if opts.output.dynamic_batch and not batch_info.generalises:
        raise ConfigError(f"--dynamic-batch: the model does not compute other batches correctly ({batch_info.detail})")
    # outputs without a batch axis cannot be cut into chunks: every batch is the model's own
    batch_size = opts.training.batch_size if batch_info.splittable else batch_info.native
    if batch_info.chunk is not None or batch_info.declared_fixed:
        state.notes.append(f"Batch: {batch_info.detail}" + ("" if batch_info.splittable else
                           f"; training and evaluation use batches of {batch_info.native}") + ".")
    return Loaded(module, dense, inputs, batch_info, batch_size, metadata, data_spec, parsed_preprocess, method)


def _method_keywords(opts) -> dict:
    """The method's options as given, plus the optimiser for methods that train with one: the
    method's own default optimiser with the fields the user gave replaced."""
    keywords = dict(opts.method_options)
    optimizer = opts.training.optimizer_for(opts.method)
    if optimizer is not None:
        keywords.setdefault("optimizer", optimizer)
    return keywords
