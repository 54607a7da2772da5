"""The two MNIST networks of the pruning literature (Han et al. 2015, DNS, OLMP), written from scratch.

* :class:`LeNet5` is Caffe's ``lenet_train_test.prototxt``: conv1 20@5x5 -> maxpool 2 -> conv2
  50@5x5 -> maxpool 2 -> ip1 800->500 -> ReLU -> ip2 500->10. There is no activation after the
  convolutions (Caffe's LeNet has none). 431,080 parameters at 1x28x28.
* :class:`LeNet300` is LeNet-300-100: ip1 784->300 -> ReLU -> ip2 300->100 -> ReLU -> ip3 100->10.
  266,610 parameters at 1x28x28.

Layer names follow the Caffe prototxts (``conv1``, ``ip1``, ...) so per-layer results can be set
next to the published tables (e.g. OLMP's kept fractions per layer). Both return logits.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LeNet5", "LeNet300"]


def _lenet5_feature_size(input_size: int) -> int:
    """Side of conv2's pooled output: two (5x5 valid conv, 2x2 pool) stages."""
    side = input_size
    for _ in range(2):
        side = (side - 4) // 2
    if side < 1:
        raise ValueError(f"LeNet5 needs input_size >= 16, got {input_size}")
    return side


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> None:
        super().__init__()
        side = _lenet5_feature_size(input_size)
        self.conv1 = nn.Conv2d(in_channels, 20, kernel_size=5)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.ip1 = nn.Linear(50 * side * side, 500)
        self.relu1 = nn.ReLU()
        self.ip2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        return self.ip2(self.relu1(self.ip1(self.flatten(x))))


class LeNet300(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.ip1 = nn.Linear(in_channels * input_size * input_size, 300)
        self.relu1 = nn.ReLU()
        self.ip2 = nn.Linear(300, 100)
        self.relu2 = nn.ReLU()
        self.ip3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.ip1(self.flatten(x)))
        x = self.relu2(self.ip2(x))
        return self.ip3(x)
