"""Image preprocessing: the `--preprocess` option and the transform it builds.

Every image source produces a float batch [B, C, h, w] with values in [0, 1]; `ImageTransform`
turns it into model inputs in this order:

1. resize (bilinear, antialiased) to `size`, default the model's H x W; a larger `size` is then
   centre-cropped to the model's H x W (the usual "resize 256, crop 224");
2. replicate a grey channel to the model's channel count;
3. reverse RGB to BGR when `channel_order` is "bgr";
4. normalise: (x - mean) / std per channel, in the model's channel order; one value broadcasts;
5. arrange for the model's layout (NCHW, NHWC, NHW or flat) and cast to its dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from .layout import ImageLayout

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How raw images become model inputs.

    size: (H, W) to resize to; None = the model's H x W. Larger than the model: centre-cropped.
    mean, std: per channel in the model's channel order (after `channel_order`); length 1
        broadcasts. Defaults 0 and 1 leave inputs in [0, 1].
    channel_order: "rgb" or "bgr" (for 3-channel models trained on BGR, e.g. Caffe/OpenCV).
    scale: divisor taking 8-bit pixels (image files, MNIST CSV) to [0, 1]; default 255.
        The scikit-learn digits (values 0..16) are always divided by 16.
    """

    size: tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    channel_order: str = "rgb"
    scale: float = 255.0

    def __post_init__(self) -> None:
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ConfigError(f"preprocessing size must be two positive integers, got {self.size}")
        if not self.mean or not self.std:
            raise ConfigError("preprocessing mean and std need at least one value each")
        if any(not s > 0 for s in self.std):
            raise ConfigError(f"preprocessing std values must be positive, got {'/'.join(map(str, self.std))}")
        if self.channel_order not in ("rgb", "bgr"):
            raise ConfigError(f"channel order must be 'rgb' or 'bgr', got {self.channel_order!r}")
        if not self.scale > 0:
            raise ConfigError(f"preprocessing scale must be positive, got {self.scale}")

    def describe(self) -> str:
        """Only what differs from the defaults, e.g. 'mean 0.485/0.456/0.406, std ..., bgr'."""
        default = Preprocess()
        parts = []
        if self.size is not None:
            parts.append(f"resize {self.size[0]}x{self.size[1]}")
        if self.mean != default.mean:
            parts.append("mean " + "/".join(f"{v:g}" for v in self.mean))
        if self.std != default.std:
            parts.append("std " + "/".join(f"{v:g}" for v in self.std))
        if self.channel_order != default.channel_order:
            parts.append(self.channel_order)
        if self.scale != default.scale:
            parts.append(f"scale 1/{self.scale:g}")
        return ", ".join(parts)


PREPROCESS_KEYS = ("size", "mean", "std", "order", "scale")


def _floats(key: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--preprocess {key}={text!r}: expected numbers separated by '/', e.g. 0.485/0.456/0.406") from None


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) == 1:
        parts = parts * 2  # "224" means 224x224
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"--preprocess size={text!r}: expected HxW, e.g. 224x224")
    return int(parts[0]), int(parts[1])


def parse_preprocess(text: str | None) -> Preprocess:
    """Parse `--preprocess`, e.g. "size=224x224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225,order=bgr".

    Keys (all optional): size=HxW (or one number for a square), mean=a/b/c, std=a/b/c,
    order=rgb|bgr, scale=255. The word `imagenet` sets the ImageNet mean and std; later keys
    override it. Empty text gives the defaults: the model's size, mean 0, std 1, RGB, scale 255.
    """
    fields: dict = {}
    seen: set[str] = set()
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if item.lower() == "imagenet":
            fields.setdefault("mean", IMAGENET_MEAN)
            fields.setdefault("std", IMAGENET_STD)
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or key not in PREPROCESS_KEYS:
            raise ConfigError(f"--preprocess: unknown item {item!r}; expected imagenet or KEY=VALUE with KEY in {', '.join(PREPROCESS_KEYS)}")
        if key in seen:
            raise ConfigError(f"--preprocess: {key} is given twice")
        seen.add(key)
        if key == "size":
            fields["size"] = _size(value)
        elif key in ("mean", "std"):
            fields[key] = _floats(key, value)
        elif key == "order":
            fields["channel_order"] = value.lower()
        else:
            (fields["scale"],) = _floats(key, value)
    return Preprocess(**fields)


@dataclass
class ImageTransform:
    """[B, C, h, w] floats in [0, 1] -> [B, *layout.sample_shape] model inputs (see module doc)."""

    layout: ImageLayout
    preprocess: Preprocess
    dtype: torch.dtype
    _mean: torch.Tensor = field(init=False, repr=False)
    _std: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        c = self.layout.channels
        self._mean = _per_channel("mean", self.preprocess.mean, c)
        self._std = _per_channel("std", self.preprocess.std, c)

    @property
    def resize_to(self) -> tuple[int, int]:
        return self.preprocess.size or (self.layout.height, self.layout.width)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32)
        if tuple(x.shape[-2:]) != self.resize_to:
            x = F.interpolate(x, size=self.resize_to, mode="bilinear", align_corners=False, antialias=True)
        x = _centre_crop(x, self.layout.height, self.layout.width)
        if x.shape[1] == 1 and self.layout.channels > 1:
            x = x.expand(-1, self.layout.channels, -1, -1)
        if self.preprocess.channel_order == "bgr":
            x = x.flip(1)
        x = (x - self._mean) / self._std
        return self.layout.arrange(x).to(self.dtype)


def _per_channel(name: str, values: tuple[float, ...], channels: int) -> torch.Tensor:
    if len(values) not in (1, channels):
        raise DataError(
            f"--preprocess {name} has {len(values)} values but the model input takes {channels} channel(s); give 1 or {channels}"
        )
    return torch.tensor(values, dtype=torch.float32).expand(channels).reshape(1, channels, 1, 1)


def _centre_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


def build_transform(preprocess: Preprocess | None, layout: ImageLayout, dtype: torch.dtype, input_name: str) -> ImageTransform:
    """The transform for one model input, with every preprocessing/model conflict checked now."""
    preprocess = preprocess or Preprocess()
    if not dtype.is_floating_point:
        raise DataError(
            f"the model input {input_name!r} takes {str(dtype).removeprefix('torch.')} values; image sources produce "
            "floats, so give the data as an .npz in the model's dtype"
        )
    if preprocess.size is not None and layout.kind != "flat":
        h, w = preprocess.size
        if h < layout.height or w < layout.width:
            raise DataError(
                f"--preprocess size={h}x{w} is smaller than the model input {input_name!r} "
                f"({layout.height}x{layout.width}); images are resized to it, then centre-cropped"
            )
    if preprocess.channel_order == "bgr" and layout.channels != 3:
        raise DataError(f"--preprocess order=bgr needs a 3-channel model input; {input_name!r} has {layout.channels}")
    if layout.kind == "flat":
        # For flat inputs `size` defines the image geometry itself: nothing to crop.
        preprocess = replace(preprocess, size=None)
    return ImageTransform(layout, preprocess, dtype)
