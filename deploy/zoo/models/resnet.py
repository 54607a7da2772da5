"""ResNet-18/34 (torchvision architecture), written from scratch.

The module and parameter names follow torchvision's ``resnet18`` (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0``, ..., ``fc``) so a torchvision state dict loads
unchanged. ``width`` scales every stage (64 -> 64/128/256/512), so tests can build a tiny one.

:class:`ResNetBackbone` is the trunk (stem + 4 stages, no pooling/classifier); the lane network
(:mod:`deploy.zoo.models.ufld`) reuses it. :class:`ResNet` adds global average pooling and ``fc``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "BasicBlock",
    "ResNetBackbone",
    "ResNet",
    "STAGE_BLOCKS",
    "resnet",
    "resnet18",
    "resnet34",
    "resnet_backbone",
]

# Blocks per stage for the BasicBlock ResNets.
STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
}


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN projection) shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                conv1x1(in_channels, out_channels, stride),
                nn.BatchNorm2d(out_channels),
            )
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max pool) followed by ``layer1`` ... ``layer4``.

    ``forward`` returns the ``layer4`` feature map (stride 32, ``out_channels`` = 8 * width
    channels); :meth:`forward_features` returns all four stage outputs (strides 4, 8, 16, 32).
    """

    def __init__(
        self,
        blocks: tuple[int, int, int, int] | list[int] = STAGE_BLOCKS[18],
        width: int = 64,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(blocks) != 4:
            raise ValueError(f"expected 4 stages, got {len(blocks)}")
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.width = width
        self.stage_channels = tuple(width * m for m in (1, 2, 4, 8))
        self.out_channels = self.stage_channels[-1]

        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        channels = width
        stages = []
        for i, (n_blocks, out_channels) in enumerate(zip(blocks, self.stage_channels)):
            stride = 1 if i == 0 else 2
            layers = [BasicBlock(channels, out_channels, stride)]
            layers += [BasicBlock(out_channels, out_channels) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*layers))
            channels = out_channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's ResNet initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        c2 = self.layer1(self.stem(x))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return c2, c3, c4, c5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)


class ResNet(ResNetBackbone):
    """Image classifier: backbone, global average pool, ``fc`` (logits)."""

    def __init__(
        self,
        blocks: tuple[int, int, int, int] | list[int] = STAGE_BLOCKS[18],
        num_classes: int = 1000,
        width: int = 64,
        in_channels: int = 3,
    ) -> None:
        super().__init__(blocks, width=width, in_channels=in_channels)
        self.num_classes = num_classes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.out_channels, num_classes)

    def backbone_forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.backbone_forward(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _blocks(depth: int) -> tuple[int, int, int, int]:
    try:
        return STAGE_BLOCKS[depth]
    except KeyError:
        raise ValueError(f"unsupported ResNet depth {depth}; choose from {sorted(STAGE_BLOCKS)}") from None


def resnet(depth: int = 18, num_classes: int = 1000, width: int = 64, in_channels: int = 3) -> ResNet:
    """ResNet-``depth`` classifier (18 or 34)."""
    return ResNet(_blocks(depth), num_classes=num_classes, width=width, in_channels=in_channels)


def resnet18(num_classes: int = 1000, width: int = 64, in_channels: int = 3) -> ResNet:
    return resnet(18, num_classes=num_classes, width=width, in_channels=in_channels)


def resnet34(num_classes: int = 1000, width: int = 64, in_channels: int = 3) -> ResNet:
    return resnet(34, num_classes=num_classes, width=width, in_channels=in_channels)


def resnet_backbone(depth: int = 18, width: int = 64, in_channels: int = 3) -> ResNetBackbone:
    """The trunk alone (stem + layer1..layer4), output stride 32 with ``8 * width`` channels."""
    return ResNetBackbone(_blocks(depth), width=width, in_channels=in_channels)
