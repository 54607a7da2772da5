"""Ultra-Fast-Lane-Detection v1 (row-anchor classification), inference graph, written from scratch.

See the deployment spec (deploy.md, section 7): a ResNet-18/34 trunk, then on ``layer4`` (``8 * width``
channels, stride 32) a 1x1 conv to 8 channels, flatten, ``Linear(8 * H/32 * W/32, hidden)``,
ReLU, ``Linear(hidden, (griding_num + 1) * num_row_anchors * num_lanes)`` and a reshape to
``[N, griding_num + 1, num_row_anchors, num_lanes]``.

Defaults are the TuSimple configuration: ResNet-18, input 288x800 (layer4 is 9x25, so FC1 is
1800 -> 2048), griding_num 100, 56 row anchors, 4 lanes, output (101, 56, 4).

``aux=True`` adds the auxiliary segmentation branch (training only, as in the paper): conv-BN-ReLU
stacks on ``layer2``, ``layer3`` and ``layer4``, the deeper two upsampled to ``layer2``'s stride 8,
concatenated (``6 * width`` channels; 384 at width 64), dilated 3x3 convs down to ``2 * width``,
then a 1x1 conv to ``num_lanes + 1`` classes. In training mode ``forward`` then returns
``(logits, segmentation)``; in eval mode, and so in every export, the logits alone.

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
        aux: bool = False,
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
        self.aux = aux
        if aux:
            w = width

            def cbr(cin: int, cout: int, k: int = 3, dilation: int = 1) -> list[nn.Module]:
                return [nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, bias=False),
                        nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

            self.aux_header2 = nn.Sequential(*cbr(2 * w, 2 * w), *cbr(2 * w, 2 * w), *cbr(2 * w, 2 * w), *cbr(2 * w, 2 * w))
            self.aux_header3 = nn.Sequential(*cbr(4 * w, 2 * w), *cbr(2 * w, 2 * w), *cbr(2 * w, 2 * w))
            self.aux_header4 = nn.Sequential(*cbr(8 * w, 2 * w), *cbr(2 * w, 2 * w))
            self.aux_combine = nn.Sequential(
                *cbr(6 * w, 4 * w, dilation=2), *cbr(4 * w, 2 * w, dilation=2), *cbr(2 * w, 2 * w, dilation=2),
                *cbr(2 * w, 2 * w, dilation=4), nn.Conv2d(2 * w, num_lanes + 1, 1))

    def forward(self, x: torch.Tensor):
        if self.aux and self.training:
            _, c3, c4, c5 = self.backbone.forward_features(x)
        else:
            c5 = self.backbone(x)
        fea = torch.flatten(self.pool(c5), 1)
        logits = self.cls(fea).reshape(-1, *self.cls_dim)
        if not (self.aux and self.training):
            return logits
        size = c3.shape[-2:]
        seg = torch.cat((self.aux_header2(c3),
                         nn.functional.interpolate(self.aux_header3(c4), size=size, mode="bilinear", align_corners=True),
                         nn.functional.interpolate(self.aux_header4(c5), size=size, mode="bilinear", align_corners=True)), 1)
        return logits, self.aux_combine(seg)


def ufld(**options) -> UFLD:
    """UFLD with the TuSimple defaults; any constructor argument may be overridden."""
    return UFLD(**options)
