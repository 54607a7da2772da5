"""Ultra-Fast-Lane-Detection v1 (row-anchor classification), inference graph, written from scratch.

See the deployment spec (deploy.md, section 7): a ResNet-18/34 trunk, then on ``layer4`` (``8 * width``
channels, stride 32) a 1x1 conv to 8 channels, flatten, ``Linear(8 * H/32 * W/32, hidden)``,
ReLU, ``Linear(hidden, (griding_num + 1) * num_row_anchors * num_lanes)`` and a reshape to
``[N, griding_num + 1, num_row_anchors, num_lanes]``.

Defaults are the TuSimple configuration: ResNet-18, input 288x800 (layer4 is 9x25, so FC1 is
1800 -> 2048), griding_num 100, 56 row anchors, 4 lanes, output (101, 56, 4). The auxiliary
segmentation branch is a training-only part and is not built.

Module names: ``backbone`` (a :class:`~deploy.zoo.models.resnet.ResNetBackbone`, so its parameters
are ``backbone.conv1``, ``backbone.layer1.0.conv1``, ...), ``pool`` (the 1x1 conv, with bias as
in the original), ``cls`` (``Sequential(Linear, ReLU, Linear)``: ``cls.0`` is FC1, ``cls.2`` FC2).
"""

from __future__ import annotations

import torch
from torch import nn

from .resnet import resnet_backbone

__all__ = ["UFLD", "ufld"]


class UFLD(nn.Module):
    def __init__(
        self,
        griding_num: int = 100,
        num_row_anchors: int = 56,
        num_lanes: int = 4,
        input_size: tuple[int, int] = (288, 800),
        backbone_depth: int = 18,
        width: int = 64,
        hidden: int = 2048,
        pool_channels: int = 8,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        height, width_px = input_size
        if height % 32 or width_px % 32:
            raise ValueError(f"input size must be a multiple of 32, got {input_size}")
        self.input_size = (height, width_px)
        self.griding_num = griding_num
        self.num_row_anchors = num_row_anchors
        self.num_lanes = num_lanes
        self.cls_dim = (griding_num + 1, num_row_anchors, num_lanes)
        self.feature_size = (height // 32, width_px // 32)
        self.flat_features = pool_channels * self.feature_size[0] * self.feature_size[1]
        total = self.cls_dim[0] * self.cls_dim[1] * self.cls_dim[2]

        self.backbone = resnet_backbone(backbone_depth, width=width, in_channels=in_channels)
        self.pool = nn.Conv2d(self.backbone.out_channels, pool_channels, kernel_size=1)
        self.cls = nn.Sequential(
            nn.Linear(self.flat_features, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, total),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.pool(self.backbone(x))
        fea = torch.flatten(fea, 1)
        out = self.cls(fea)
        return out.reshape(-1, *self.cls_dim)


def ufld(**options) -> UFLD:
    """UFLD with the TuSimple defaults; any constructor argument may be overridden."""
    return UFLD(**options)
