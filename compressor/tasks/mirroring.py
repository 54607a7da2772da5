"""Left-right mirroring: the training augmentation of the lane and detection tasks.

A mirrored road is still a road and a mirrored object still the same class, so mirroring is the one
augmentation both tasks take without changing what a label means. Fine-tuning a pruned detector
on 1,200 images without it overfits within a few epochs (training loss below the dense model's,
validation loss rising). The labels move with the image: boxes reflect about the vertical axis;
lanes reflect and their slots are re-encoded, left to right again.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..data.layout import image_layout

Labels = dict | None


class Mirroring:
    """Mirrors each sample of a batch with probability `probability`, drawn from the generator the
    training loop gives (seeded per phase and epoch, so a resumed epoch draws the same flips)."""

    def __init__(self, width_axis: int, mirror_labels: Callable[[dict, torch.Tensor, int], dict],
                 probability: float = 0.5):
        self.width_axis, self.mirror_labels, self.probability = width_axis, mirror_labels, probability

    def __call__(self, x: torch.Tensor, labels: Labels, generator: torch.Generator) -> tuple[torch.Tensor, Labels]:
        flip = torch.rand(x.shape[0], generator=generator) < self.probability
        if not flip.any():
            return x, labels
        x = x.clone()
        x[flip] = x[flip].flip(self.width_axis)
        if labels is not None:
            labels = self.mirror_labels(dict(labels), flip, x.shape[self.width_axis])
        return x, labels


def mirror_boxes(labels: dict, flip: torch.Tensor, width: int) -> dict:
    """Detection labels: boxes [x1, y1, x2, y2] in input pixels; x1, x2 -> width - x2, width - x1."""
    boxes = labels["boxes"].clone()
    boxes[flip, :, 0] = width - labels["boxes"][flip, :, 2]
    boxes[flip, :, 2] = width - labels["boxes"][flip, :, 0]
    labels["boxes"] = boxes
    return labels


def lane_mirror(geometry) -> Callable[[dict, torch.Tensor, int], dict]:
    """Lane labels: every point x -> frame width - 1 - x, the lanes re-encoded into row-anchor cells in
    their new left-to-right order (slot k is the k-th lane from the left, as before)."""

    def mirror(labels: dict, flip: torch.Tensor, width: int) -> dict:
        cls = labels["cls"].clone()
        for i in torch.nonzero(flip).squeeze(1).tolist():
            num_lanes, num_h = labels["counts"][i].tolist()
            h_samples = labels["h_samples"][i, :num_h].tolist()
            lanes = [[geometry.frame_width - 1 - v if v >= 0 else v for v in lane[:num_h]]
                     for lane in labels["lanes"][i, :num_lanes].tolist()]
            cls[i] = geometry.encode(lanes[::-1], h_samples)
        labels["cls"] = cls
        return labels

    return mirror


def width_axis(input_shape) -> int:
    """The image width's axis: -1 for [N, C, H, W], -2 for [N, H, W, C] (channels last, as
    data.layout.image_layout reads a shape)."""
    channels_last = len(input_shape) == 4 and image_layout(input_shape, "").kind == "NHWC"
    return -2 if channels_last else -1
