"""`.npz` files: array `x` in exactly the model's input layout and dtype, optional labels `y`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ..dataset import TensorSource, ZipSource
from ..layout import layout_name
from ..split import limited_indices
from ..validation import check_finite, check_labels, check_sample_shape


def _read_arrays(path: Path, names: tuple[str, ...] = ("x",)) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [n for n in names if n not in archive.files]
            if missing:
                found = ", ".join(archive.files) or "none"
                if names == ("x",):
                    raise DataError(f"{path} has no array 'x' (arrays: {found}); save the inputs as x= and any labels as y=")
                raise DataError(f"{path} has no array for model input(s) {', '.join(map(repr, missing))} (arrays: {found}); "
                                "save one array per input name, and any labels as y=")
            return {name: archive[name] for name in (*names, "y") if name in archive.files}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as .npz: {exc}") from None


def _to_dtype(x: np.ndarray, dtype: torch.dtype, input_name: str) -> torch.Tensor:
    if x.dtype.kind not in "biuf":
        raise DataError(f"data x has dtype {x.dtype}; expected numbers for the model input {input_name!r}")
    if not dtype.is_floating_point and x.dtype.kind == "f" and (x != np.round(x)).any():
        raise DataError(
            f"data x holds fractional values but the model input {input_name!r} takes {str(dtype).removeprefix('torch.')}"
        )
    return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)


def npz_source(path: Path, name: str, *, input_shape, input_dtype: torch.dtype, input_name: str,
               num_classes: int | None, limit: int | None, seed: int) -> TensorSource:
    arrays = _read_arrays(path)
    x = arrays["x"]
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"{path}: array x holds no samples (shape {x.shape})")
    check_sample_shape(x.shape[1:], input_shape[1:], input_name, layout_name(input_shape))
    check_finite(x, f"{path}: array x")
    labels = None
    data_classes = None
    if "y" in arrays:
        labels = check_labels(arrays["y"], len(x), num_classes, f"{path}: labels y")
        data_classes = int(labels.max()) + 1
    keep = limited_indices(len(x), limit, seed)
    tensor = _to_dtype(x[keep], input_dtype, input_name)
    return TensorSource(name, tensor, None if labels is None else labels[keep], data_classes, total=len(x))


def npz_array_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the arrays in an .npz (read from the headers, without loading the data)."""
    try:
        with zipfile.ZipFile(path) as archive:
            shapes = {}
            for member in archive.namelist():
                if member.endswith(".npy"):
                    with archive.open(member) as f:
                        version = np.lib.format.read_magic(f)
                        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                        shape, _, _ = read_header(f)
                    shapes[member[:-4]] = tuple(int(d) for d in shape)
            return shapes
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as .npz: {exc}") from None


def npz_multi_source(path: Path, name: str, *, inputs, num_classes: int | None, limit: int | None, seed: int) -> ZipSource:
    """One array per model input, named as the input, for a model with several inputs.

    `inputs` lists (input name, shape with batch, dtype) in the model's order."""
    arrays = _read_arrays(path, tuple(input_name for input_name, _, _ in inputs))
    counts = {input_name: len(arrays[input_name]) if arrays[input_name].ndim else 0 for input_name, _, _ in inputs}
    if len(set(counts.values())) != 1 or not next(iter(counts.values())):
        raise DataError(f"{path}: the input arrays must hold the same number of samples, > 0 (got {counts})")
    total = next(iter(counts.values()))
    labels = data_classes = None
    if "y" in arrays:
        labels = check_labels(arrays["y"], total, num_classes, f"{path}: labels y")
        data_classes = int(labels.max()) + 1
    keep = limited_indices(total, limit, seed)
    parts = []
    for input_name, shape, dtype in inputs:
        x = arrays[input_name]
        check_sample_shape(x.shape[1:], shape[1:], input_name, layout_name(shape))
        check_finite(x, f"{path}: array {input_name}")
        parts.append(TensorSource(input_name, _to_dtype(x[keep], dtype, input_name), None, None, total))
    return ZipSource(name, parts, None if labels is None else labels[keep], data_classes, total)
