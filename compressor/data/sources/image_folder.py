"""A folder of images: one subfolder per class (label = index in sorted subfolder names), or
images directly in the folder (unlabelled, e.g. for distillation from the dense model).

The scan and its checks run up front; images are decoded (Pillow) when a sample is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ..preprocess import ImageTransform
from ..split import limited_indices

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in candidates
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def scan_image_folder(root: Path) -> tuple[list[Path], np.ndarray | None, list[str]]:
    """(image files, labels or None, class names). Errors name the folder at fault."""
    try:
        entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise DataError(f"cannot read the image folder {root}: {exc}") from None
    class_dirs = [p for p in entries if p.is_dir()]
    loose = _images_in(root, recursive=False)
    if not class_dirs:
        if not loose:
            raise DataError(f"the image folder {root} is empty: no class subfolders and no images")
        return loose, None, []
    if loose:
        raise DataError(
            f"the image folder {root} has both class subfolders and loose images (e.g. {loose[0].name}); "
            "put every image in its class folder"
        )
    files: list[Path] = []
    labels: list[int] = []
    for label, folder in enumerate(class_dirs):
        images = _images_in(folder, recursive=True)
        if not images:
            raise DataError(
                f"class folder {folder} has no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        files += images
        labels += [label] * len(images)
    return files, np.asarray(labels, dtype=np.int64), [p.name for p in class_dirs]


class ImageFolderSource:
    """Decodes one file per sample: grey-scale for 1-channel models, RGB for 3-channel ones."""

    def __init__(self, name: str, files: list[Path], labels: np.ndarray | None, num_classes: int | None,
                 transform: ImageTransform, total: int, detail: str = ""):
        self.name, self.files, self.labels, self.num_classes = name, files, labels, num_classes
        self.transform, self.total, self.detail = transform, total, detail
        self.mode = "L" if transform.layout.channels == 1 else "RGB"

    def __len__(self) -> int:
        return len(self.files)

    def sample(self, index: int) -> torch.Tensor:
        from PIL import Image

        path = self.files[index]
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert(self.mode), dtype=np.float32)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot decode image {path}: {exc}") from None
        chw = torch.from_numpy(pixels).reshape(pixels.shape[0], pixels.shape[1], -1).permute(2, 0, 1)
        return self.transform((chw / self.transform.preprocess.scale).unsqueeze(0))[0]


def _check_readable(files: list[Path]) -> None:
    """Header check (cheap: no decode) of the files that will be used."""
    from PIL import Image

    for path in files:
        try:
            with Image.open(path) as image:
                image.size
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot read image {path}: {exc}") from None


def image_folder_source(root: Path, name: str, transform: ImageTransform, *, input_name: str,
                        num_classes: int | None, limit: int | None, seed: int, detail: str = "") -> ImageFolderSource:
    channels = transform.layout.channels
    if channels not in (1, 3):
        raise DataError(
            f"image folders feed 1-channel (grey) or 3-channel (RGB) inputs; the model input {input_name!r} has {channels}"
        )
    files, labels, classes = scan_image_folder(root)
    if labels is not None and num_classes is not None and len(classes) > num_classes:
        raise DataError(
            f"class folder {classes[num_classes]!r} would be label {num_classes}, out of range: the image folder has "
            f"{len(classes)} class folders but the model has {num_classes} outputs (labels 0..{num_classes - 1})"
        )
    keep = limited_indices(len(files), limit, seed)
    kept = [files[i] for i in keep]
    _check_readable(kept)
    return ImageFolderSource(
        name, kept, None if labels is None else labels[keep], len(classes) or None, transform, total=len(files), detail=detail
    )
