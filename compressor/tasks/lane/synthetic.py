"""Synthetic road scenes written in exactly the TuSimple layout, so tests and demos run the real reader.

Each image is a flat road seen by a forward camera: sky and a tree line above a horizon, a textured
road, 2 to 5 lane markings (straight or curved, solid or dashed, white or yellow) converging towards a
vanishing point, vehicles that hide parts of lanes, shadows and a global lighting change.

Choices, documented because the labels depend on them:

- Lane count: 2, 3, 4 or 5 lanes with probabilities 0.15, 0.30, 0.40, 0.15, so an image has more
  than 4 lanes now and then, as some TuSimple images do. A lane with no point in the image is not
  emitted (never happens with these geometry ranges, but is guarded).
- Geometry: with t = (y - horizon) / (height - horizon), a lane's x is
  ``vx + (x_bottom - vx) * t + bend * (1 - t) ** 2``: linear in y for a straight lane (a flat road
  in perspective) and quadratic for a curved one; all lanes share ``vx`` and ``bend``, so they
  converge and never cross, and the left-to-right order at the bottom holds on every row.
- Labels: the rounded x at every h_sample below the lane's top end where 0 <= x < width; -2
  elsewhere (above the horizon, above the lane's top end, or outside the image). Dashed lanes are
  labelled through their gaps, and lanes hidden by a vehicle keep their labels, as in TuSimple,
  whose annotators traced lanes behind vehicles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw

from ...errors import DataError
from .tusimple import ABSENT, LaneRecord, write_records

LANE_COUNTS = (2, 3, 4, 5)
LANE_COUNT_P = (0.15, 0.30, 0.40, 0.15)
JPEG_QUALITY = 90


def generate_tusimple(
    root: Path,
    count: int,
    seed: int = 0,
    *,
    size: tuple[int, int] = (1280, 720),
    h_samples: Iterable[int] = range(160, 720, 10),
    label_name: str = "label_data_synthetic.json",
) -> list[LaneRecord]:
    """Write ``count`` scenes as ``clips/synthetic/<index>/20.jpg`` plus the label file; the same seed, the same files.

    Each image draws from its own generator seeded by (seed, index), so one image does not depend on
    how many came before it.
    """
    if count < 0:
        raise DataError(f"cannot generate {count} images: the count must be 0 or more")
    width, height = int(size[0]), int(size[1])
    if width < 16 or height < 16:
        raise DataError(f"image size {width}x{height} is too small for a road scene")
    rows = tuple(int(y) for y in h_samples)
    if not rows:
        raise DataError("h_samples is empty: the labels need at least one row")
    root = Path(root)
    records = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        image, lanes = _scene(rng, width, height, rows)
        raw_file = f"clips/synthetic/{index}/20.jpg"
        path = root / raw_file
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="JPEG", quality=JPEG_QUALITY)
        records.append(LaneRecord(raw_file=raw_file, lanes=lanes, h_samples=rows))
    write_records(root / label_name, records)
    return records


class _Road:
    """The road geometry shared by the lanes, road edges and vehicles of one scene."""

    def __init__(self, width: int, height: int, horizon: float, vx: float, bend: float):
        self.width, self.height = width, height
        self.horizon, self.vx, self.bend = horizon, vx, bend

    def t(self, y):
        """Depth parameter: 0 at the horizon, 1 at the image bottom (proportional to 1/distance)."""
        return (np.asarray(y, dtype=np.float64) - self.horizon) / (self.height - self.horizon)

    def x(self, x_bottom: float, t):
        return self.vx + (x_bottom - self.vx) * t + self.bend * (1.0 - t) ** 2

    def y(self, t):
        return self.horizon + np.asarray(t) * (self.height - self.horizon)


def _scene(rng: np.random.Generator, width: int, height: int, rows: tuple[int, ...]):
    """Draw one scene; return the PIL image and its lanes (x per row, -2 = absent), left to right."""
    horizon = rng.uniform(0.30, 0.42) * height
    vx = rng.uniform(0.38, 0.62) * width
    bend = 0.0 if rng.random() < 0.4 else rng.choice((-1.0, 1.0)) * rng.uniform(0.06, 0.22) * width
    road = _Road(width, height, horizon, vx, bend)

    n_lanes = int(rng.choice(LANE_COUNTS, p=LANE_COUNT_P))
    spacing = rng.uniform(0.45, 0.70) * width  # lane width at the bottom row, px
    left_of_camera = int(rng.integers(0, n_lanes - 1))  # the ego lane lies between this lane and the next
    shift = rng.uniform(-0.15, 0.15) * spacing
    bottoms = [width / 2 + shift + (i - left_of_camera - 0.5) * spacing for i in range(n_lanes)]
    tops = rng.uniform(0.02, 0.15, size=n_lanes)  # where each lane's marking starts, in t

    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    _background(draw, rng, road, bottoms[0] - 0.45 * spacing, bottoms[-1] + 0.45 * spacing)

    lanes = []
    for i, (x_bottom, t_top) in enumerate(zip(bottoms, tops)):
        yellow = rng.random() < (0.5 if i == 0 else 0.12)
        _draw_lane(draw, rng, road, x_bottom, t_top, yellow)
        label = _label(road, x_bottom, t_top, rows)
        if any(x != ABSENT for x in label):
            lanes.append(label)

    _draw_vehicles(draw, rng, road, bottoms, spacing)
    pixels = _photometric(rng, np.asarray(image, dtype=np.float32), road)
    return Image.fromarray(pixels), tuple(lanes)


def _label(road: _Road, x_bottom: float, t_top: float, rows: tuple[int, ...]) -> tuple[int, ...]:
    """The lane's x on each row: rounded, inside [0, width), below its top end; else -2."""
    label = []
    for y in rows:
        t = float(road.t(y))
        if t < t_top or y >= road.height:
            label.append(ABSENT)
            continue
        x = int(round(float(road.x(x_bottom, t))))
        label.append(x if 0 <= x < road.width else ABSENT)
    return tuple(label)


def _background(draw: ImageDraw.ImageDraw, rng, road: _Road, left_edge: float, right_edge: float) -> None:
    """Sky, a tree line on the horizon, roadside ground and the road surface."""
    w, h, hz = road.width, road.height, road.horizon
    top = np.array([rng.uniform(90, 150), rng.uniform(130, 180), rng.uniform(170, 230)])
    low = np.array([rng.uniform(190, 235), rng.uniform(195, 235), rng.uniform(200, 240)])
    for y in range(int(hz) + 1):  # a vertical sky gradient, one line per row
        s = y / max(hz, 1.0)
        draw.line([(0, y), (w, y)], fill=tuple(int(c) for c in top * (1 - s) + low * s))
    x = -10.0
    while x < w:  # trees and buildings standing on the horizon
        block_w = rng.uniform(15, 90)
        block_h = rng.uniform(5, 0.12 * h)
        g = rng.uniform(40, 110)
        draw.rectangle([x, hz - block_h, x + block_w, hz + 1], fill=(int(g * 0.8), int(g), int(g * 0.7)))
        x += block_w * rng.uniform(0.6, 1.0)
    ground = (int(rng.uniform(70, 120)), int(rng.uniform(90, 130)), int(rng.uniform(50, 80)))
    draw.rectangle([0, hz, w, h], fill=ground)
    ts = np.linspace(0.0, 1.0, 60)
    ys = road.y(ts)
    left = list(zip(road.x(left_edge, ts), ys))
    right = list(zip(road.x(right_edge, ts), ys))
    grey = rng.uniform(70, 130)
    draw.polygon(left + right[::-1], fill=(int(grey), int(grey), int(grey * rng.uniform(0.95, 1.08))))


def _draw_lane(draw: ImageDraw.ImageDraw, rng, road: _Road, x_bottom: float, t_top: float, yellow: bool) -> None:
    """A marking as polygons whose width shrinks with distance; a dashed one has gaps every 9-13 m."""
    if yellow:
        base = np.array([230.0, 190.0, 40.0])
    else:
        base = np.array([235.0, 235.0, 230.0])
    colour = tuple(int(c) for c in np.clip(base * rng.uniform(0.7, 1.05), 0, 255))
    width_bottom = rng.uniform(18, 42)
    y_top = float(road.y(t_top))
    ys = np.arange(y_top, road.height + 2.0, 2.0)
    ts = road.t(ys)
    xs = road.x(x_bottom, ts)
    half = np.maximum(0.5, width_bottom * ts / 2)
    if rng.random() < 0.5:  # dashed: depth ~ 1/t, dash 3-4.5 m of a 9-13 m period (US highway marks)
        depth = 4.0 / np.maximum(ts, 1e-3)
        period, dash = rng.uniform(9, 13), rng.uniform(3.0, 4.5)
        on = ((depth + rng.uniform(0, period)) % period) < dash
    else:
        on = np.ones(len(ys), dtype=bool)
    start = None
    for i in range(len(ys) + 1):
        if i < len(ys) and on[i]:
            if start is None:
                start = i
            continue
        if start is not None and i - start >= 2:
            seg = slice(start, i)
            left = list(zip(xs[seg] - half[seg], ys[seg]))
            right = list(zip(xs[seg] + half[seg], ys[seg]))
            draw.polygon(left + right[::-1], fill=colour)
        start = None


def _draw_vehicles(draw: ImageDraw.ImageDraw, rng, road: _Road, bottoms: list[float], spacing: float) -> None:
    """0 to 3 vehicles (boxes with a window, tail lights and a shadow), far ones first so near ones cover them."""
    count = int(rng.choice((0, 1, 2, 3), p=(0.25, 0.35, 0.25, 0.15)))
    depths = sorted(rng.uniform(0.12, 0.75, size=count))
    for t in depths:
        gap = int(rng.integers(0, len(bottoms) - 1))  # between lanes gap and gap+1
        middle = (bottoms[gap] + bottoms[gap + 1]) / 2 + rng.uniform(-0.45, 0.45) * spacing
        cx = float(road.x(middle, t))
        y_bottom = float(road.y(t))
        car_w = spacing * t * rng.uniform(0.4, 0.55)  # a 1.8 m car in a 3.7 m lane
        car_h = car_w * rng.uniform(0.7, 1.0)
        x0, x1 = cx - car_w / 2, cx + car_w / 2
        y0 = y_bottom - car_h
        shadow = [x0 - 0.05 * car_w, y_bottom - 0.06 * car_h, x1 + 0.05 * car_w, y_bottom + 0.04 * car_h]
        draw.rectangle(shadow, fill=(25, 25, 25))
        body = tuple(int(c) for c in rng.uniform(20, 230, size=3))
        draw.rectangle([x0, y0, x1, y_bottom], fill=body)
        draw.rectangle([x0 + 0.1 * car_w, y0 + 0.08 * car_h, x1 - 0.1 * car_w, y0 + 0.4 * car_h], fill=(30, 35, 45))
        light_w, light_h = 0.14 * car_w, 0.08 * car_h
        light_y = y0 + 0.55 * car_h
        draw.rectangle([x0 + 0.04 * car_w, light_y, x0 + 0.04 * car_w + light_w, light_y + light_h], fill=(200, 20, 20))
        draw.rectangle([x1 - 0.04 * car_w - light_w, light_y, x1 - 0.04 * car_w, light_y + light_h], fill=(200, 20, 20))


def _photometric(rng, pixels: np.ndarray, road: _Road) -> np.ndarray:
    """Road texture, soft shadows, and a global brightness/contrast change; returns uint8 pixels."""
    h, w = pixels.shape[:2]
    coarse = rng.standard_normal((h // 24 + 2, w // 24 + 2), dtype=np.float32)
    blotches = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR))
    below = (np.arange(h, dtype=np.float32) >= road.horizon)[:, None]
    texture = blotches * rng.uniform(4, 12) * below + rng.standard_normal((h, w), dtype=np.float32) * rng.uniform(2, 7)
    pixels += texture[:, :, None]

    shadows = int(rng.choice((0, 1, 2), p=(0.4, 0.4, 0.2)))
    if shadows:
        scale = 4  # drawn small and upsampled: soft edges for free
        mask = Image.new("L", (w // scale, h // scale))
        mask_draw = ImageDraw.Draw(mask)
        for _ in range(shadows):
            y_a = rng.uniform(road.horizon, h) / scale
            y_b = min(h / scale, y_a + rng.uniform(20, 200) / scale)
            xs = rng.uniform(-0.2 * w, 1.2 * w, size=4) / scale
            mask_draw.polygon([(xs[0], y_a), (xs[1], y_a), (xs[2], y_b), (xs[3], y_b)], fill=255)
        soft = np.asarray(mask.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
        pixels *= (1.0 - rng.uniform(0.25, 0.55) * soft)[:, :, None]

    contrast = rng.uniform(0.7, 1.2)
    gain = rng.uniform(0.6, 1.3)
    mean = float(pixels.mean())
    side = np.linspace(1.0 - 0.12, 1.0 + 0.12, w, dtype=np.float32) ** rng.choice((-1.0, 1.0))  # light from one side
    pixels = ((pixels - mean) * contrast + mean) * gain * side[None, :, None]
    return np.clip(pixels, 0, 255).astype(np.uint8)
