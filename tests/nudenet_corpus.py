"""The YOLOv8n that ships in the nudenet 3.4.2 wheel (exported by ultralytics), for tests.

It comes from the model corpus (tests/corpus: the wheel is downloaded once with pip, never
installed); tests skip with the reason when neither the cache nor the network has it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from corpus_models import corpus_model

def nudenet_yolo_path() -> Path:
    """The corpus' 320n.onnx (input [N, 3, H, W] RGB in [0, 1], 320x320 by its metadata, output [N, 4+C, anchors])."""
    return corpus_model("nudenet-yolov8n-320")


def letterbox(image: np.ndarray, size: int = 320) -> torch.Tensor:
    """uint8 HxWx3 RGB -> [1, 3, size, size] float in [0, 1], aspect kept, padded grey (ultralytics' 114)."""
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float()[None] / 255.0
    h, w = x.shape[2:]
    scale = size / max(h, w)
    nh, nw = round(h * scale), round(w * scale)
    x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    out = torch.full((1, 3, size, size), 114 / 255.0)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[:, :, top:top + nh, left:left + nw] = x
    return out


def sample_photos() -> tuple[torch.Tensor, torch.Tensor]:
    """(china, calibration): china.jpg letterboxed (the photo checked), and 4 calibration images made
    from the other sample photo only (flower.jpg, mirrored, and two zoomed crops), so the check
    does not calibrate on the photo it measures."""
    from sklearn.datasets import load_sample_image

    flower = load_sample_image("flower.jpg")
    h, w = flower.shape[:2]
    crops = [flower[: 2 * h // 3, : 2 * w // 3], flower[h // 3:, w // 3:]]
    calibration = [letterbox(flower), letterbox(flower[:, ::-1])] + [letterbox(c) for c in crops]
    return letterbox(load_sample_image("china.jpg")), torch.cat(calibration)
