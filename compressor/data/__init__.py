"""Training and evaluation data for `--data SPEC` (see DATA_SPEC_HELP).

    ds = load_dataset("mnist-csv:mnist.csv.gz", input_shape=[1, 1, 28, 28], num_classes=10, limit=2000)
    x, y = ds[0]                      # x: 1x28x28 float32, y: int64 scalar
    train_idx, val_idx = split_indices(len(ds), 0.2, seed=0)
    train, val = ds.subset(train_idx), ds.subset(val_idx)
    ds.description                    # one line for the report

Modules: `spec` (dispatch, help text), `dataset` (LoadedDataset and in-memory sources),
`sources/` (one per kind of spec), `preprocess` (--preprocess and the image transform),
`layout` (image -> model input layout), `validation` (checks), `split` (seeded selection).
"""

from .dataset import LoadedDataset, example_batch, stack_inputs
from .preprocess import Preprocess, parse_preprocess
from .spec import DATA_SPEC_HELP, load_dataset, load_model_data, random_dataset, random_model_data
from .split import split_indices

__all__ = ["DATA_SPEC_HELP", "LoadedDataset", "example_batch", "stack_inputs", "Preprocess", "load_dataset", "load_model_data", "random_model_data", "parse_preprocess", "random_dataset", "split_indices"]
