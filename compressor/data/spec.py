"""`--data SPEC`: from the text on the command line to a `LoadedDataset` that fits the model."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import ConfigError, DataError
from .dataset import LoadedDataset
from .layout import image_layout
from .preprocess import Preprocess, build_transform
from .validation import format_shape

DATA_SPEC_HELP = """\
--data SPEC, one of:
  FILE.npz          array x in the model's exact input layout and dtype (e.g. NCHW float32),
                    optional integer labels y of shape [N]; used as stored (no --preprocess)
  FOLDER            images (png, jpg, bmp, ...) in one subfolder per class, label = index of
                    the sorted subfolder names; or images directly in FOLDER (unlabelled)
  digits            scikit-learn's bundled 8x8 handwritten digits (1,797 samples, 10 classes)
  mnist-csv:PATH    MNIST-style CSV, gzip or plain: 784 pixels 0..255 then the label per row
  tusimple:DIR      TuSimple lanes (label_data_*.json / test_label.json beside clips/): task lane
  coco:FILE[,DIR]   COCO instances JSON and its image folder: task detection
Image data (FOLDER, digits, mnist-csv) is scaled to [0, 1], resized (bilinear) to the model's
HxW, grey replicated to the model's channels, then normalised as --preprocess says.
--preprocess KEY=VALUE,... (all optional; 'imagenet' sets the ImageNet mean/std):
  size=HxW          resize to this first, then centre-crop to the model's size (default: model's)
  mean=a/b/c        subtracted per channel, model channel order (default 0; one value broadcasts)
  std=a/b/c         divided per channel (default 1, so inputs stay in [0, 1])
  order=rgb|bgr     channel order of 3-channel models (default rgb)
  scale=255         divisor from 8-bit pixels to [0, 1] (default 255)
e.g. --preprocess size=256x256,mean=0.485/0.456/0.406,std=0.229/0.224/0.225"""

MNIST_CSV_PREFIX = "mnist-csv:"


def _existing(path_text: str, what: str) -> Path:
    path = Path(path_text).expanduser()
    if not path.exists():
        raise DataError(f"{what} not found: {path_text}")
    return path


def _check_input_shape(input_shape: Sequence[int]) -> list[int]:
    shape = list(input_shape)
    if len(shape) < 1 or not all(isinstance(d, numbers.Integral) and d > 0 for d in shape[1:]):
        raise DataError(f"the model input shape {shape} is not concrete; give it with --input-shape NAME:1x3x224x224")
    return [int(d) if isinstance(d, numbers.Integral) else d for d in shape]


def load_dataset(spec: str, *, input_shape: Sequence[int], input_dtype: torch.dtype = torch.float32,
                 preprocess: Preprocess | None = None, num_classes: int | None = None, limit: int | None = None,
                 seed: int = 0, input_name: str = "input") -> LoadedDataset:
    """Load `spec` (see DATA_SPEC_HELP) as samples of shape `input_shape[1:]` and dtype `input_dtype`.

    `num_classes` (the model's number of outputs) bounds the labels; `limit` keeps the first
    `limit` samples of a `seed`ed shuffle. Every problem raises DataError (ConfigError for bad
    options) with one line; image files are decoded lazily, everything else is checked here.
    """
    from .sources.digits import digits_source
    from .sources.image_folder import image_folder_source
    from .sources.mnist_csv import mnist_csv_source
    from .sources.npz import npz_source

    shape = _check_input_shape(input_shape)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"the sample limit must be a positive integer, got {limit!r}")
    if num_classes is not None and num_classes < 1:
        raise ConfigError(f"the number of classes must be positive, got {num_classes}")
    preprocess = preprocess or Preprocess()
    spec = spec.strip()
    common = dict(num_classes=num_classes, limit=limit, seed=seed)

    if spec.lower().endswith(".npz") and not spec.startswith(MNIST_CSV_PREFIX):
        if preprocess != Preprocess():
            raise ConfigError(f"--preprocess does not apply to .npz data ({spec}): x is fed to the model as stored")
        path = _existing(spec, "data file")
        if not path.is_file():
            raise DataError(f"data path {spec} is not a file")
        source = npz_source(path, spec, input_shape=shape, input_dtype=input_dtype, input_name=input_name, **common)
        return LoadedDataset(source)

    def transform():
        if len(shape) < 2:
            raise DataError(f"image data cannot feed the model input {input_name!r} of shape {format_shape(shape)}")
        layout = image_layout(shape, input_name, preprocess.size)
        return build_transform(preprocess, layout, input_dtype, input_name)

    detail = preprocess.describe()
    if spec == "digits":
        return LoadedDataset(digits_source(transform(), detail=detail, **common))
    if spec.startswith(MNIST_CSV_PREFIX):
        path_text = spec[len(MNIST_CSV_PREFIX):]
        if not path_text:
            raise DataError("mnist-csv: needs a path, e.g. mnist-csv:data/mnist.csv.gz")
        path = _existing(path_text, "data file")
        if not path.is_file():
            raise DataError(f"data path {path_text} is not a file")
        return LoadedDataset(mnist_csv_source(path, spec, transform(), detail=detail, **common))
    path = Path(spec).expanduser()
    if path.is_dir():
        return LoadedDataset(image_folder_source(path, spec, transform(), input_name=input_name, detail=detail, **common))
    if path.exists():
        raise DataError(
            f"data file {spec} is not a known format: use an .npz, a folder of images, or mnist-csv:{spec} for MNIST-style CSV"
        )
    raise DataError(
        f"unknown data spec or missing path {spec!r}: expected an .npz file, an image folder, 'digits', 'mnist-csv:PATH', 'tusimple:DIR' or 'coco:FILE'"
    )


def random_dataset(input_shape: Sequence[int], n: int, input_dtype: torch.dtype = torch.float32, seed: int = 0) -> LoadedDataset:
    """`n` unlabelled random samples of shape `input_shape[1:]` (see sources/random_inputs.py), for data-free runs."""
    from .sources.random_inputs import RandomSource

    shape = _check_input_shape(input_shape)
    if n < 1:
        raise ConfigError(f"the number of random samples must be positive, got {n}")
    return LoadedDataset(RandomSource(tuple(shape[1:]), n, input_dtype, seed))


def load_model_data(spec: str, inputs: Sequence[tuple[str, Sequence[int], torch.dtype]], *, preprocess: Preprocess | None = None,
                    num_classes: int | None = None, limit: int | None = None, seed: int = 0) -> LoadedDataset:
    """`load_dataset` for a model's inputs, given as (name, shape with batch, dtype) in model order.

    A single-input model takes every kind of spec; a model with several inputs takes an .npz
    with one array per input name (its samples are tuples, one tensor per input)."""
    if len(inputs) == 1:
        name, shape, dtype = inputs[0]
        return load_dataset(spec, input_shape=shape, input_dtype=dtype, preprocess=preprocess,
                            num_classes=num_classes, limit=limit, seed=seed, input_name=name)
    from .sources.npz import npz_multi_source

    names = ", ".join(name for name, _, _ in inputs)
    spec = spec.strip()
    if not spec.lower().endswith(".npz"):
        raise DataError(f"the model has {len(inputs)} inputs ({names}): give --data as an .npz with one array per input name")
    if preprocess is not None and preprocess != Preprocess():
        raise ConfigError(f"--preprocess does not apply to .npz data ({spec}): arrays are fed to the model as stored")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"the sample limit must be a positive integer, got {limit!r}")
    path = _existing(spec, "data file")
    if not path.is_file():
        raise DataError(f"data path {spec} is not a file")
    shaped = [(name, _check_input_shape(shape), dtype) for name, shape, dtype in inputs]
    return LoadedDataset(npz_multi_source(path, spec, inputs=shaped, num_classes=num_classes, limit=limit, seed=seed))


def random_model_data(inputs: Sequence[tuple[str, Sequence[int], torch.dtype]], n: int, seed: int = 0) -> LoadedDataset:
    """`random_dataset` for every input of a model (a tuple per sample when it has several)."""
    if len(inputs) == 1:
        _, shape, dtype = inputs[0]
        return random_dataset(shape, n, dtype, seed)
    from .dataset import ZipSource
    from .sources.random_inputs import RandomSource

    if n < 1:
        raise ConfigError(f"the number of random samples must be positive, got {n}")
    parts = [RandomSource(tuple(_check_input_shape(shape)[1:]), n, dtype, seed + k) for k, (_, shape, dtype) in enumerate(inputs)]
    return LoadedDataset(ZipSource("random inputs", parts, None, None, n))
