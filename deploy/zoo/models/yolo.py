"""A small YOLO-style detector (YOLOv8 flavour), written from scratch.

Layout (``w`` = ``width``, ``n`` = ``depth``; YOLOv8n is about ``width=16, depth=1``):

* backbone: Conv 3x3/2 (w) -> Conv 3x3/2 (2w) -> C2f(n) -> Conv 3x3/2 (4w) -> C2f(2n) [P3, /8]
  -> Conv 3x3/2 (8w) -> C2f(2n) [P4, /16] -> Conv 3x3/2 (16w) -> C2f(n) -> SPPF [P5, /32]
* neck (FPN top-down, then PAN bottom-up): nearest x2 ``nn.Upsample`` + concat + C2f, then strided
  3x3 Conv + concat + C2f, giving outputs at strides 8, 16, 32.
* head: per scale a box branch (2 Conv 3x3 + 1x1 -> 4) and a class branch (2 Conv 3x3 + 1x1 ->
  ``num_classes``); the maps are flattened, concatenated over scales and permuted to
  ``[N, num_anchors_total, 4 + num_classes]`` with ``num_anchors_total = sum(H_i * W_i)``.

Box decoding (``decode=True``, default) is sigmoid based, one anchor-free point per cell:
``xy = (grid + 2 * sigmoid(t_xy) - 0.5) * stride``, ``wh = (2 * sigmoid(t_wh)) ** 2 * 4 * stride``
(pixels, centre x/y + width/height), class scores are ``sigmoid(t_cls)``. With ``decode=False``
the raw head outputs are returned in the same layout. The decoding grid is precomputed for
``input_size`` (a constant in exported graphs), so export at that size.

Conv = Conv2d (no bias) + BatchNorm + SiLU; C2f splits its 1x1 conv output in two with
``torch.split`` and concatenates every bottleneck output with ``torch.cat``; SPPF chains three
5x5/1 max pools.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Conv", "Bottleneck", "C2f", "SPPF", "DetectHead", "YOLO", "yolo"]


class Conv(nn.Module):
    """Conv2d (``padding = k // 2``, no bias) + BatchNorm2d + SiLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 Convs with an optional residual add."""

    def __init__(self, channels: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = Conv(channels, channels, 3)
        self.cv2 = Conv(channels, channels, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block with two convolutions: 1x1 conv, split in two halves, ``n`` bottlenecks chained on
    the second half, concat of all pieces, 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, n: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        self.hidden = out_channels // 2
        self.cv1 = Conv(in_channels, 2 * self.hidden, 1)
        self.cv2 = Conv((2 + n) * self.hidden, out_channels, 1)
        self.m = nn.ModuleList(Bottleneck(self.hidden, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(torch.split(self.cv1(x), [self.hidden, self.hidden], dim=1))
        for block in self.m:
            y.append(block(y[-1]))
        return self.cv2(torch.cat(y, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: 1x1 conv, three chained k x k/1 max pools, concat, 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, k: int = 5) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.cv1 = Conv(in_channels, hidden, 1)
        self.cv2 = Conv(hidden * 4, out_channels, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        y3 = self.m(y2)
        return self.cv2(torch.cat((x, y1, y2, y3), dim=1))


class DetectHead(nn.Module):
    """Decoupled head on several scales; returns ``[N, sum(H_i*W_i), 4 + num_classes]``.

    The decoding grid (cell x/y and stride per anchor point) is precomputed for ``input_size``
    and kept in non-persistent buffers, so exported graphs hold it as one constant instead of
    Shape/Range/... subgraphs. Eager calls with another input size rebuild it on the fly; traced or
    exported graphs are for ``input_size`` only.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: tuple[int, ...],
        strides: tuple[int, ...] = (8, 16, 32),
        input_size: tuple[int, int] = (640, 640),
        decode: bool = True,
        class_prior: bool = False,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(strides):
            raise ValueError("one stride per input scale")
        self.num_classes = num_classes
        self.num_outputs = 4 + num_classes
        self.strides = tuple(strides)
        self.decode = decode
        box_channels = max(16, in_channels[0] // 4)
        cls_channels = max(in_channels[0], min(num_classes, 100))
        self.box = nn.ModuleList(
            nn.Sequential(
                Conv(c, box_channels, 3), Conv(box_channels, box_channels, 3), nn.Conv2d(box_channels, 4, 1)
            )
            for c in in_channels
        )
        self.cls = nn.ModuleList(
            nn.Sequential(
                Conv(c, cls_channels, 3), Conv(cls_channels, cls_channels, 3), nn.Conv2d(cls_channels, num_classes, 1)
            )
            for c in in_channels
        )
        sizes = [(-(-input_size[0] // s), -(-input_size[1] // s)) for s in self.strides]
        # class scores start near the share of cells that hold an object (about 5 per image), not
        # at 0.5: otherwise the first hundreds of steps only unlearn the background
        # (for training from scratch, `class_prior=True`; the reference weights keep the default init)
        for branch, (h, w) in zip(self.cls, sizes) if class_prior else ():
            nn.init.constant_(branch[-1].bias, math.log(5 / num_classes / (h * w)))
        self.feature_sizes = tuple(sizes)
        grid, stride = self.make_grid(sizes, self.strides)
        self.register_buffer("anchor_points", grid, persistent=False)  # [2, A]: cell x, y
        self.register_buffer("anchor_strides", stride, persistent=False)  # [1, A]

    @staticmethod
    def make_grid(
        sizes: list[tuple[int, int]] | tuple[tuple[int, int], ...], strides: tuple[int, ...]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell coordinates ``[2, A]`` (x, y; row-major per scale like ``flatten(2)``) and strides
        ``[1, A]``."""
        grids, stride_rows = [], []
        for (h, w), s in zip(sizes, strides):
            ys = torch.arange(h, dtype=torch.float32)
            xs = torch.arange(w, dtype=torch.float32)
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            grids.append(torch.stack((gx.reshape(-1), gy.reshape(-1)), dim=0))
            stride_rows.append(torch.full((1, h * w), float(s)))
        return torch.cat(grids, dim=1), torch.cat(stride_rows, dim=1)

    def _grid_for(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.jit.is_tracing():
            return self.anchor_points, self.anchor_strides
        sizes = tuple((int(f.shape[2]), int(f.shape[3])) for f in features)
        if sizes == self.feature_sizes:
            return self.anchor_points, self.anchor_strides
        grid, stride = self.make_grid(sizes, self.strides)
        device = self.anchor_points.device
        return grid.to(device), stride.to(device)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        outs = [
            torch.cat((self.box[i](x), self.cls[i](x)), dim=1).flatten(2)  # [N, 4+nc, H*W]
            for i, x in enumerate(features)
        ]
        y = torch.cat(outs, dim=2)  # [N, 4+nc, A]
        if self.decode:
            grid, stride = self._grid_for(features)
            grid, stride = grid.to(y.dtype), stride.to(y.dtype)
            p = torch.sigmoid(y)
            xy = (grid + p[:, 0:2] * 2.0 - 0.5) * stride
            wh = (p[:, 2:4] * 2.0) ** 2 * (4.0 * stride)
            y = torch.cat((xy, wh, p[:, 4:]), dim=1)
        return y.permute(0, 2, 1)  # [N, A, 4+nc]


class YOLO(nn.Module):
    """YOLOv8-style detector. ``width`` is the stem's channel count (stages use 1/2/4/8/16 x
    width), ``depth`` the number of bottlenecks in the outer C2f blocks (inner ones use 2 x)."""

    def __init__(
        self,
        num_classes: int = 80,
        width: int = 16,
        depth: int = 1,
        in_channels: int = 3,
        input_size: tuple[int, int] = (640, 640),
        decode: bool = True,
        class_prior: bool = False,
    ) -> None:
        super().__init__()
        if width < 2 or depth < 1:
            raise ValueError(f"need width >= 2 and depth >= 1, got width={width}, depth={depth}")
        self.num_classes = num_classes
        c1, c2, c3, c4, c5 = (width * m for m in (1, 2, 4, 8, 16))
        n = depth
        # Backbone.
        self.stem = Conv(in_channels, c1, 3, 2)  # /2
        self.down1 = Conv(c1, c2, 3, 2)  # /4
        self.stage1 = C2f(c2, c2, n, shortcut=True)
        self.down2 = Conv(c2, c3, 3, 2)  # /8
        self.stage2 = C2f(c3, c3, 2 * n, shortcut=True)  # P3
        self.down3 = Conv(c3, c4, 3, 2)  # /16
        self.stage3 = C2f(c4, c4, 2 * n, shortcut=True)  # P4
        self.down4 = Conv(c4, c5, 3, 2)  # /32
        self.stage4 = C2f(c5, c5, n, shortcut=True)
        self.sppf = SPPF(c5, c5, 5)  # P5
        # Neck: FPN (top-down).
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.fpn4 = C2f(c5 + c4, c4, n)
        self.fpn3 = C2f(c4 + c3, c3, n)  # out /8
        # Neck: PAN (bottom-up).
        self.pan_down3 = Conv(c3, c3, 3, 2)
        self.pan4 = C2f(c3 + c4, c4, n)  # out /16
        self.pan_down4 = Conv(c4, c4, 3, 2)
        self.pan5 = C2f(c4 + c5, c5, n)  # out /32
        self.input_size = tuple(input_size)
        self.head = DetectHead(
            num_classes, (c3, c4, c5), strides=(8, 16, 32), input_size=input_size, decode=decode,
            class_prior=class_prior,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage1(self.down1(self.stem(x)))
        p3 = self.stage2(self.down2(x))
        p4 = self.stage3(self.down3(p3))
        p5 = self.sppf(self.stage4(self.down4(p4)))

        n4 = self.fpn4(torch.cat((self.upsample(p5), p4), dim=1))
        out3 = self.fpn3(torch.cat((self.upsample(n4), p3), dim=1))
        out4 = self.pan4(torch.cat((self.pan_down3(out3), n4), dim=1))
        out5 = self.pan5(torch.cat((self.pan_down4(out4), p5), dim=1))
        return self.head([out3, out4, out5])


def yolo(
    num_classes: int = 80,
    width: int = 16,
    depth: int = 1,
    in_channels: int = 3,
    input_size: tuple[int, int] = (640, 640),
    decode: bool = True,
) -> YOLO:
    return YOLO(
        num_classes=num_classes,
        width=width,
        depth=depth,
        in_channels=in_channels,
        input_size=input_size,
        decode=decode,
    )
