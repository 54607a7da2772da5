"""Reader of the COCO instances format (the annotations JSON plus a folder of images).

Only what detection training and evaluation need is kept as typed records (images, boxes,
categories); the JSON itself stays in `raw` so the evaluation library sees exactly what was read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import DataError


@dataclass(frozen=True)
class CocoImage:
    """One image entry: its id, file name (relative to the image folder) and size in pixels."""

    id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True)
class CocoBox:
    """One object: category id, (x, y, w, h) box in pixels, crowd flag and area (as COCO states it)."""

    category_id: int
    bbox: tuple[float, float, float, float]
    iscrowd: int
    area: float


@dataclass
class CocoDataset:
    """A read COCO file: images sorted by id, boxes per image, and the category id <-> index mapping."""

    path: Path
    image_dir: Path
    images: list[CocoImage]
    boxes: dict[int, list[CocoBox]]
    categories: list[dict]
    raw: dict
    category_ids: list[int] = field(init=False)
    class_index: dict[int, int] = field(init=False)

    def __post_init__(self) -> None:
        # COCO's ids have gaps (80 classes among 1..90): models predict a contiguous 0..K-1 index.
        self.category_ids = [int(c["id"]) for c in self.categories]
        self.class_index = {cid: i for i, cid in enumerate(self.category_ids)}

    def image_path(self, image: CocoImage) -> Path:
        """Where the image's file lies."""
        return self.image_dir / image.file_name


def default_image_dir(annotations: Path) -> Path:
    """The image folder when none is given: COCO's ROOT/<split>/, else <json folder>/images, else the json's folder."""
    folder = annotations.parent
    stem = annotations.stem
    if folder.name == "annotations" and stem.startswith("instances_"):
        split_dir = folder.parent / stem[len("instances_"):]
        if split_dir.is_dir():
            return split_dir
    if (folder / "images").is_dir():
        return folder / "images"
    return folder


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_coco(annotations: Path, images: Path | None = None, check_images: bool = True) -> CocoDataset:
    """Read and check a COCO instances file; every problem the user can fix is one DataError line."""
    annotations = Path(annotations)
    if not annotations.is_file():
        raise DataError(f"COCO annotations file not found: {annotations}")
    try:
        raw = json.loads(annotations.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{annotations} is not a JSON file: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{annotations} is not a COCO instances file: its JSON is not an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(raw.get(key), list):
            raise DataError(f"{annotations} is not a COCO instances file: it has no '{key}' list")

    try:
        image_list = sorted(
            (CocoImage(int(i["id"]), str(i["file_name"]), int(i["width"]), int(i["height"])) for i in raw["images"]),
            key=lambda im: im.id,
        )
        categories = sorted((dict(c) for c in raw["categories"]), key=lambda c: int(c["id"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"{annotations}: an image or category entry lacks a field or has a bad value ({exc!r})"
        ) from None
    category_set = {int(c["id"]) for c in categories}
    boxes: dict[int, list[CocoBox]] = {im.id: [] for im in image_list}

    for ann in raw["annotations"]:
        ann_id = ann.get("id", "?") if isinstance(ann, dict) else "?"
        if not isinstance(ann, dict) or "image_id" not in ann or "category_id" not in ann or "bbox" not in ann:
            raise DataError(f"{annotations}: annotation {ann_id} lacks image_id, category_id or bbox")
        if ann["image_id"] not in boxes:
            raise DataError(
                f"{annotations}: annotation {ann_id} refers to image {ann['image_id']}, which is not in 'images'"
            )
        if ann["category_id"] not in category_set:
            raise DataError(
                f"{annotations}: annotation {ann_id} has category {ann['category_id']}, which is not in 'categories'"
            )
        bbox = ann["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_number(v) for v in bbox):
            raise DataError(f"{annotations}: annotation {ann_id} has bbox {bbox!r}, not 4 numbers [x, y, w, h]")
        if bbox[2] <= 0 or bbox[3] <= 0:
            raise DataError(f"{annotations}: annotation {ann_id} has bbox {bbox!r} with a width or height <= 0")
        try:
            box = CocoBox(
                category_id=int(ann["category_id"]),
                bbox=tuple(float(v) for v in bbox),
                iscrowd=int(ann.get("iscrowd", 0)),
                area=float(ann.get("area", bbox[2] * bbox[3])),
            )
        except (TypeError, ValueError):
            raise DataError(f"{annotations}: annotation {ann_id} has a non-numeric iscrowd or area") from None
        boxes[ann["image_id"]].append(box)

    image_dir = Path(images) if images is not None else default_image_dir(annotations)
    if check_images:
        missing = [im.file_name for im in image_list if not (image_dir / im.file_name).is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} of the {len(image_list)} images of {annotations} are missing from {image_dir}, "
                f"the first: {missing[0]}"
            )
    return CocoDataset(annotations, image_dir, image_list, boxes, categories, raw)


def parse_coco_spec(text: str) -> tuple[Path, Path | None]:
    """Split the CLI form `coco:ANNOTATIONS.json[,IMAGES]` (text is what follows `coco:`)."""
    text = text.strip()
    if not text:
        raise DataError(
            "coco: needs an annotations file, e.g. coco:data/annotations/instances_val2017.json[,data/val2017]"
        )
    ann, sep, imgs = text.partition(",")
    if not ann.strip():
        raise DataError("coco: needs an annotations file before the comma, e.g. coco:instances_val2017.json,val2017")
    return Path(ann.strip()), (Path(imgs.strip()) if sep and imgs.strip() else None)
