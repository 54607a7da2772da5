"""Checks that data fits the model, each failing with one line that names the problem."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DataError


def format_shape(shape: Sequence[int]) -> str:
    """(3, 32, 32) -> '3x32x32'; a scalar sample -> 'scalar'."""
    return "x".join(str(int(d)) for d in shape) if len(shape) else "scalar"


def check_sample_shape(actual: Sequence[int], expected: Sequence[int], input_name: str, layout: str | None = None) -> None:
    if tuple(actual) != tuple(expected):
        suffix = f" ({layout})" if layout else ""
        raise DataError(
            f"data samples have shape {format_shape(actual)} but the model input {input_name!r} "
            f"takes {format_shape(expected)}{suffix}"
        )


def check_finite(x: np.ndarray, what: str) -> None:
    """NaN or Inf in training inputs silently poisons every weight, so refuse them up front."""
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x.reshape(len(x), -1)) if x.ndim else ~np.isfinite(x)
    if bad.any():
        per_sample = bad.any(axis=1) if bad.ndim == 2 else bad
        first = int(np.argmax(per_sample))
        raise DataError(f"{what} contains {int(bad.sum())} NaN/Inf values (first in sample {first})")


def _range_text(num_classes: int) -> str:
    return f"0..{num_classes - 1} (the model has {num_classes} outputs)"


def check_labels(y: np.ndarray, num_samples: int, num_classes: int | None, what: str = "labels y") -> np.ndarray:
    """Class-index labels as int64 [N]: integral, non-negative, below `num_classes` when given."""
    y = np.asarray(y)
    if y.ndim != 1:
        hint = " (one-hot labels? store the class index instead)" if y.ndim == 2 else ""
        raise DataError(
            f"{what} have shape {format_shape(y.shape)}; expected one class index per sample, shape {num_samples}{hint}"
        )
    if len(y) != num_samples:
        raise DataError(f"{what} has {len(y)} labels but there are {num_samples} samples")
    if y.dtype.kind not in "iuf":
        raise DataError(f"{what} must be integer class indices, not {y.dtype}")
    if y.dtype.kind == "f":
        fractional = ~np.isfinite(y) | (y != np.round(y))
        if fractional.any():
            i = int(np.argmax(fractional))
            raise DataError(f"{what} must be integer class indices; sample {i} has label {y[i]:g}")
    labels = y.astype(np.int64)
    if len(labels) == 0:
        return labels
    low = int(np.argmin(labels))
    if labels[low] < 0:
        allowed = _range_text(num_classes) if num_classes else "0 or more"
        raise DataError(f"{what}: label {labels[low]} (sample {low}) is out of range; labels must be {allowed}")
    high = int(np.argmax(labels))
    if num_classes is not None and labels[high] >= num_classes:
        raise DataError(f"{what}: label {labels[high]} (sample {high}) is out of range; labels must be {_range_text(num_classes)}")
    return labels
