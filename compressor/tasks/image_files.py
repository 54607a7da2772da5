"""Image files of a task's dataset as model inputs: decoded, resized whole to the model's size.

Lane and detection labels are coordinates in the original frame, so the image is stretched to
the model's height and width (no crop, which would cut labels off) and the task scales its labels
by the same factors. Resized images are kept as 8-bit pixels up to a memory budget, so later
epochs skip the JPEG decode that dominates a small model's training step on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.layout import image_layout
from ..data.preprocess import Preprocess, build_transform
from ..errors import ConfigError, DataError

CACHE_BUDGET_BYTES = 512 * 2**20


def image_transform(request, form: str):
    """The model's input transform for `request` (a tasks.DataRequest); crops are refused."""
    preprocess = request.preprocess or Preprocess()
    if preprocess.size is not None:
        raise ConfigError(f"{form} images are resized whole to the model's input; --preprocess size= does not apply")
    layout = image_layout(request.input_shape, request.input_name)
    if layout.kind not in ("NCHW", "NHWC") or layout.channels not in (1, 3):
        raise DataError(f"{form} data feeds image models (1 or 3 channels, NCHW or NHWC); input {request.input_name!r} "
                        f"has shape {request.input_shape}")
    return build_transform(preprocess, layout, request.input_dtype, request.input_name)


class ImageFiles:
    """One decoded, resized image per index; `size_of(i)` is the original (width, height)."""

    def __init__(self, files: list[Path], transform):
        self.files, self.transform = list(files), transform
        self.mode = "L" if transform.layout.channels == 1 else "RGB"
        h, w = transform.layout.height, transform.layout.width
        self.limit = max(0, CACHE_BUDGET_BYTES // (h * w * transform.layout.channels))
        self._cache: dict[int, np.ndarray] = {}
        self._sizes: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.files)

    def _pixels(self, index: int) -> np.ndarray:
        if index in self._cache:
            return self._cache[index]
        from PIL import Image

        path = self.files[index]
        layout = self.transform.layout
        try:
            with Image.open(path) as image:
                self._sizes[index] = image.size
                resized = image.convert(self.mode).resize((layout.width, layout.height), Image.BILINEAR)
                pixels = np.asarray(resized, dtype=np.uint8).reshape(layout.height, layout.width, -1)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot decode image {path}: {exc}") from None
        if len(self._cache) < self.limit:
            self._cache[index] = pixels
        return pixels

    def sample(self, index: int) -> torch.Tensor:
        pixels = torch.from_numpy(self._pixels(index).copy()).permute(2, 0, 1).to(torch.float32)
        return self.transform((pixels / self.transform.preprocess.scale).unsqueeze(0))[0]
