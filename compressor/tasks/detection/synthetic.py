"""Synthetic detection data written in exactly the COCO layout, for tests and benchmarks without COCO.

Images show simple shapes (told apart by geometry, never by colour) on textured backgrounds, at
scales from ~12 px to ~40% of the image, sometimes partly overlapping. Boxes and areas come from
the visible pixels of each drawn shape. Category ids have gaps (1, 2, 3, 5, 7, 9), as COCO's do,
so the id <-> contiguous index mapping gets exercised. Each image depends on (seed, image id)
only, so a larger count extends a smaller one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ...errors import DataError

SHAPES = ("circle", "square", "triangle", "cross", "ring", "star")
CATEGORY_IDS = {"circle": 1, "square": 2, "triangle": 3, "cross": 5, "ring": 7, "star": 9}
EMPTY_FRACTION = 0.05
MAX_OBJECTS = 8
MIN_SIZE = 12


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured float RGB background: noise, a gradient or stripes, plus mild noise."""
    kind = rng.integers(3)
    base = rng.uniform(0, 255, 3)
    if kind == 0:
        # Blocky noise: coarse random colours upsampled, so the texture has structure at several scales.
        cell = int(rng.integers(4, 24))
        coarse = rng.normal(base, 40, (height // cell + 1, width // cell + 1, 3))
        img = coarse.repeat(cell, 0).repeat(cell, 1)[:height, :width]
    elif kind == 1:
        other = rng.uniform(0, 255, 3)
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        t = xx * math.cos(angle) + yy * math.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        img = base + t[..., None] * (other - base)
    else:
        other = rng.uniform(0, 255, 3)
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(6, 40)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        wave = 0.5 + 0.5 * np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * (2 * math.pi / period))
        img = base + wave[..., None] * (other - base)
    return img + rng.normal(0, 8, (height, width, 1))


def _polygon(cx: float, cy: float, radii: list[float], start: float) -> list[tuple[float, float]]:
    step = 2 * math.pi / len(radii)
    return [(cx + r * math.cos(start + i * step), cy + r * math.sin(start + i * step)) for i, r in enumerate(radii)]


def _draw_shape(shape: str, rng: np.random.Generator, height: int, width: int, size: float) -> np.ndarray:
    """Boolean mask of one shape of about `size` pixels across, at a random place and rotation."""
    r = size / 2
    cx = rng.uniform(r * 0.6, width - r * 0.6)
    cy = rng.uniform(r * 0.6, height - r * 0.6)
    turn = rng.uniform(0, 2 * math.pi)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
        inner = r * rng.uniform(0.45, 0.65)
        draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, [r] * 4, turn), fill=1)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, [r] * 3, turn), fill=1)
    elif shape == "star":
        draw.polygon(_polygon(cx, cy, [r, r * 0.42] * 5, turn), fill=1)
    else:  # cross: a plus sign, arms a third of the size wide
        arm = r / 3
        corners = [(arm, r), (arm, arm), (r, arm), (r, -arm), (arm, -arm), (arm, -r),
                   (-arm, -r), (-arm, -arm), (-r, -arm), (-r, arm), (-arm, arm), (-arm, r)]
        c, s = math.cos(turn), math.sin(turn)
        draw.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in corners], fill=1)
    return np.asarray(canvas, dtype=bool)


def _colour(rng: np.random.Generator, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A random colour that stands out from the background under the shape."""
    under = background[mask].mean(axis=0)
    for _ in range(8):
        colour = rng.uniform(0, 255, 3)
        if np.abs(colour - under).sum() > 150:
            return colour
    return np.where(under > 127, 20.0, 235.0)


def _render(rng: np.random.Generator, height: int, width: int, classes: list[str]):
    """One image (uint8 HxWx3) and its objects as (class name, visible mask)."""
    img = _background(rng, height, width)
    labels = np.zeros((height, width), dtype=np.int16)  # 0: background, k: k-th placed object
    placed: list[str] = []
    wanted = 0 if rng.random() < EMPTY_FRACTION else int(rng.integers(1, MAX_OBJECTS + 1))
    largest = 0.4 * min(height, width)
    tries = 0
    while len(placed) < wanted and tries < 4 * wanted:
        tries += 1
        shape = classes[int(rng.integers(len(classes)))]
        size = math.exp(rng.uniform(math.log(MIN_SIZE), math.log(largest)))
        mask = _draw_shape(shape, rng, height, width, size)
        if mask.sum() < 30:
            continue
        # Partial overlap only: no earlier object may lose more than a third of what it still shows.
        covered = np.bincount(labels[mask], minlength=len(placed) + 1)[1:]
        shown = np.bincount(labels.ravel(), minlength=len(placed) + 1)[1:]
        if np.any(covered * 3 > shown):
            continue
        colour = _colour(rng, img, mask)
        img[mask] = colour + rng.normal(0, 6, (int(mask.sum()), 3))
        placed.append(shape)
        labels[mask] = len(placed)
    objects = [(shape, labels == k) for k, shape in enumerate(placed, start=1)]
    return np.clip(img, 0, 255).astype(np.uint8), objects


def generate_coco(
    root: Path,
    count: int,
    seed: int = 0,
    *,
    size: tuple[int, int] = (320, 320),
    classes: tuple[str, ...] = SHAPES,
    split: str = "synthetic",
) -> Path:
    """Write `count` images as root/<split>/<id:012d>.jpg and root/annotations/instances_<split>.json (returned).

    size is (width, height); classes a subset of SHAPES, each keeping its category id.
    """
    unknown = [c for c in classes if c not in CATEGORY_IDS]
    if unknown or not classes:
        raise DataError(f"synthetic classes must be among {', '.join(SHAPES)}; got {', '.join(unknown) or 'none'}")
    width, height = int(size[0]), int(size[1])
    if width < 4 * MIN_SIZE or height < 4 * MIN_SIZE:
        raise DataError(f"synthetic images need at least {4 * MIN_SIZE}x{4 * MIN_SIZE} pixels, got {width}x{height}")
    root = Path(root)
    image_dir = root / split
    image_dir.mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    ordered = sorted(dict.fromkeys(classes), key=CATEGORY_IDS.__getitem__)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        rng = np.random.default_rng([seed, image_id])
        pixels, objects = _render(rng, height, width, ordered)
        file_name = f"{image_id:012d}.jpg"
        Image.fromarray(pixels).save(image_dir / file_name, quality=92)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for shape, mask in objects:
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            x, y = int(cols[0]), int(rows[0])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY_IDS[shape],
                    "bbox": [x, y, int(cols[-1]) + 1 - x, int(rows[-1]) + 1 - y],
                    "area": int(mask.sum()),
                    "iscrowd": 0,
                }
            )
    data = {
        "info": {"description": f"synthetic shapes, seed {seed}"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": CATEGORY_IDS[c], "name": c, "supercategory": "shape"} for c in ordered],
    }
    path = root / "annotations" / f"instances_{split}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
