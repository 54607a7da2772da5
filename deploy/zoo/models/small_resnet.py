"""A small residual CNN with BatchNorm for 1x28x28 MNIST inputs, written from scratch.

The CIFAR-style ResNet layout (He et al. 2016, §4.2) shrunk to MNIST: a 3x3 stride-2 stem conv
1->16 with BN and ReLU, then three stages of two :class:`~deploy.zoo.models.resnet.BasicBlock`
each at widths 16/32/64 (stride 2 into stages 2 and 3, with 1x1 conv-BN projection shortcuts),
global average pooling and ``fc`` 64->10. 174,970 parameters.

It is the benchmark's second pruning target next to LeNet-5: unlike LeNet, it has BatchNorm,
residual adds and mostly 3x3 convs, which is what the SLR and ADMM papers prune. Every conv
except the stem reads a multiple of 4 input channels, so 2:4 (blocks of 4 along the input-channel
axis) applies to all of them and to ``fc``; the stem, with one input channel, stays dense under 2:4.

The stem has stride 2 (28 -> 14; the stages run at 14, 7 and 4): at full resolution, training
cost about 2.5x more on a 2-core CPU for no accuracy MNIST needs, and the benchmark trains it
dozens of epochs. ``stem_stride=1`` and wider ``widths`` give the channel-pruning benchmark a
network whose run time is convolutions, not per-operator overhead (bench/channel_pruning.py).
"""

from __future__ import annotations

import torch
from torch import nn

from .resnet import BasicBlock, conv3x3

__all__ = ["SmallResNet", "STAGE_WIDTHS"]

STAGE_WIDTHS = (16, 32, 64)
BLOCKS_PER_STAGE = 2


class SmallResNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, widths: tuple[int, ...] = STAGE_WIDTHS,
                 stem_stride: int = 2) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, widths[0], stride=stem_stride)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages = []
        previous = widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            blocks = [BasicBlock(previous, width, stride)]
            blocks += [BasicBlock(width, width) for _ in range(BLOCKS_PER_STAGE - 1)]
            stages.append(nn.Sequential(*blocks))
            previous = width
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(previous, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))
