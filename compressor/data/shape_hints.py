"""Input shapes the data (or the model's metadata) fixes, for models with dynamic dimensions.

An exporter that leaves height and width symbolic still has a size the model was made for:
the `.npz` arrays hold it, `--preprocess size=HxW` states it, ultralytics writes it into the
model's metadata (`imgsz`), and an image folder's pictures have one. Each hint is a full shape
with None where the source says nothing (the batch always), plus where it came from.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Sequence

from ..errors import DataError
from .preprocess import Preprocess

# metadata keys under which exporters record the image size the model was made for
IMAGE_SIZE_KEYS = ("imgsz", "image_size", "input_size", "img_size")


def metadata_image_size(metadata: dict[str, str]) -> tuple[int, int] | None:
    """(H, W) from the model's metadata_props, e.g. ultralytics' imgsz '[320, 320]'."""
    for key in IMAGE_SIZE_KEYS:
        text = metadata.get(key)
        if not text:
            continue
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            continue
        values = [value] if isinstance(value, int) else list(value) if isinstance(value, (list, tuple)) else []
        if values and all(isinstance(v, int) and v > 0 for v in values):
            return (values[0], values[-1]) if len(values) <= 2 else (values[-2], values[-1])
    return None


def shape_hints(spec: str | None, inputs: Sequence[tuple[str, Sequence]], preprocess: Preprocess | None,
                metadata: dict[str, str]) -> dict[str, tuple[list, str]]:
    """{input name: (shape with None where unknown, source)} for inputs given as (name, declared shape)."""
    from .sources.npz import npz_array_shapes
    from .spec import MNIST_CSV_PREFIX, _existing

    hints: dict[str, tuple[list, str]] = {}
    if spec and spec.strip() != "digits" and not spec.strip().startswith(MNIST_CSV_PREFIX):
        _existing(spec.strip(), "data")  # a missing path is the error to report, not the shapes it would have fixed
    if spec and spec.strip().lower().endswith(".npz") and Path(spec.strip()).expanduser().is_file():
        arrays = npz_array_shapes(Path(spec.strip()).expanduser())
        for k, (name, _) in enumerate(inputs):
            key = name if len(inputs) > 1 else "x"
            if key in arrays and len(arrays[key]) >= 1:
                hints[name] = ([None, *arrays[key][1:]], f"array {key} of {spec}")
        return hints
    size, source = None, ""
    if preprocess is not None and preprocess.size is not None:
        size, source = preprocess.size, "--preprocess size"
    elif (found := metadata_image_size(metadata)) is not None:
        size, source = found, "the model's metadata (image size)"
    elif spec and len(inputs) == 1 and Path(spec.strip()).expanduser().is_dir():
        size, source = _first_image_size(Path(spec.strip()).expanduser()), f"the first image of {spec}"
    if size is None:
        return hints
    h, w = size
    for name, declared in inputs:
        if len(declared) != 4:  # image sizes only fix NCHW/NHWC inputs
            continue
        nhwc = declared[3] in (1, 3) and declared[1] not in (1, 3)
        hints[name] = ([None, h, w, None] if nhwc else [None, None, h, w], source)
    return hints


def _first_image_size(folder: Path) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    from .sources.image_folder import IMAGE_EXTENSIONS

    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
            try:
                with Image.open(path) as image:
                    width, height = image.size
                return height, width
            except (OSError, UnidentifiedImageError) as exc:
                raise DataError(f"cannot read image {path}: {exc}") from None
    return None
