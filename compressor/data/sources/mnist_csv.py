"""`mnist-csv:PATH`: MNIST-style CSV, gzip or plain, one 28x28 grey image per row.

Each row is 784 pixel values 0..255 (row-major) and then the label. A header row is skipped;
if its first column is named "label" (Kaggle's layout) the label comes first instead.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ..dataset import in_memory_image_source
from ..preprocess import ImageTransform
from ..split import limited_indices
from ..validation import check_labels

SIDE = 28
COLUMNS = SIDE * SIDE + 1


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
        return raw.decode("ascii")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as a (gzip) CSV file: {exc}") from None


def _parse(path: Path, text: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixels float [N, 784], raw labels [N]) from the CSV text."""
    lines = text.splitlines()
    first = lines[0].split(",") if lines else []
    header = bool(first) and not _is_number(first[0])
    label_first = header and first[0].strip().strip('"').lower() == "label"
    body = lines[1:] if header else lines
    if not any(line.strip() for line in body):
        raise DataError(f"{path} holds no data rows")
    for number, line in enumerate(body, start=2 if header else 1):
        if line.strip() and line.count(",") != COLUMNS - 1:
            raise DataError(
                f"{path}: line {number} has {line.count(',') + 1} values; MNIST CSV rows need {COLUMNS} "
                f"({SIDE * SIDE} pixels and the label)"
            )
    try:
        table = np.loadtxt(io.StringIO("\n".join(body)), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path}: not numeric CSV: {exc}") from None
    if label_first:
        return table[:, 1:], table[:, 0]
    return table[:, :-1], table[:, -1]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_mnist_csv(path: Path, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pixels float64 [N, 784] in 0..255, labels int64 [N]) from an MNIST CSV file, checked."""
    pixels, raw_labels = _parse(path, _read_text(path))
    bad = ~np.isfinite(pixels) | (pixels < 0) | (pixels > 255)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{path}: pixel values must be 0..255; sample {row} has {pixels[row, col]:g} at pixel {col}")
    return pixels, check_labels(raw_labels, len(raw_labels), num_classes, f"{path}: labels")


def mnist_csv_source(path: Path, name: str, transform: ImageTransform, *, num_classes: int | None,
                     limit: int | None, seed: int, detail: str = ""):
    pixels, labels = read_mnist_csv(path, num_classes)
    keep = limited_indices(len(pixels), limit, seed)
    images = torch.from_numpy((pixels[keep] / transform.preprocess.scale).astype(np.float32)).reshape(-1, 1, SIDE, SIDE)
    return in_memory_image_source(
        name, images, transform, labels[keep], int(labels.max()) + 1, total=len(pixels), detail=detail
    )
