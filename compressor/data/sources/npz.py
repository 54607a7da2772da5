"""`.npz` files: array `x` in exactly the model's input layout and dtype, optional labels `y`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ..dataset import TensorSource
from ..layout import layout_name
from ..split import limited_indices
from ..validation import check_finite, check_labels, check_sample_shape


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive.files:
                names = ", ".join(archive.files) or "none"
                raise DataError(f"{path} has no array 'x' (arrays: {names}); save the inputs as x= and any labels as y=")
            return {name: archive[name] for name in ("x", "y") if name in archive.files}
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
