"""How an image (channels x height x width) maps onto a model's input tensor.

Image sources build a [B, C, H, W] batch and then arrange it for the model, which may take
NCHW (the usual ONNX layout), NHWC, grey-scale NHW, or flat vectors (e.g. LeNet-300-100 takes
784 values). The batch dimension of `input_shape` is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import DataError
from .validation import format_shape


@dataclass(frozen=True)
class ImageLayout:
    channels: int
    height: int
    width: int
    kind: str  # "NCHW" | "NHWC" | "NHW" | "flat" (C, H, W flattened in that order)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        c, h, w = self.channels, self.height, self.width
        return {"NCHW": (c, h, w), "NHWC": (h, w, c), "NHW": (h, w), "flat": (c * h * w,)}[self.kind]

    def arrange(self, batch: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, *sample_shape]."""
        if self.kind == "NHWC":
            return batch.permute(0, 2, 3, 1).contiguous()
        if self.kind == "NHW":
            return batch[:, 0]
        if self.kind == "flat":
            return batch.reshape(len(batch), -1)
        return batch


def _square_side(n: int) -> int | None:
    side = math.isqrt(n)
    return side if side * side == n else None


def image_layout(input_shape: Sequence[int], input_name: str, size: tuple[int, int] | None = None) -> ImageLayout:
    """The image geometry behind a model input shape (batch dim included).

    NHWC is assumed only when it is unambiguous: last dim 1 or 3 and dim 1 not. A flat input of
    D values is grey k x k when D = k², else RGB when D = 3k², unless `size` (H, W) says otherwise.
    """
    dims = [int(d) for d in input_shape[1:]]
    if len(dims) == 3:
        c, h, w = dims
        if dims[2] in (1, 3) and dims[0] not in (1, 3):
            return ImageLayout(dims[2], dims[0], dims[1], "NHWC")
        return ImageLayout(c, h, w, "NCHW")
    if len(dims) == 2:
        return ImageLayout(1, dims[0], dims[1], "NHW")
    if len(dims) == 1:
        (values,) = dims
        if size is not None:
            h, w = size
            if values % (h * w) == 0 and values // (h * w) in (1, 3):
                return ImageLayout(values // (h * w), h, w, "flat")
            raise DataError(
                f"the model input {input_name!r} takes {values} values per sample, which is not {h}x{w} "
                "grey or RGB pixels (the preprocessing size)"
            )
        if (side := _square_side(values)) is not None:
            return ImageLayout(1, side, side, "flat")
        if values % 3 == 0 and (side := _square_side(values // 3)) is not None:
            return ImageLayout(3, side, side, "flat")
        raise DataError(
            f"the model input {input_name!r} takes {values} values per sample, not a square grey or RGB image; "
            "give the image size with --preprocess size=HxW, or the data as an .npz"
        )
    raise DataError(
        f"image data cannot feed the model input {input_name!r} of shape {format_shape(input_shape)}: "
        "expected NCHW, NHWC, NHW or a flat vector; give the data as an .npz instead"
    )


def layout_name(input_shape: Sequence[int]) -> str | None:
    """'NCHW' / 'NHWC' for 4-d inputs (shown in shape-mismatch messages), else None."""
    if len(input_shape) != 4:
        return None
    return image_layout(input_shape, "").kind
