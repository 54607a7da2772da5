"""Reference networks (PyTorch, written from scratch) used for ONNX round-trip tests, benchmarks
and pruning experiments.

``REFERENCE_MODELS`` maps a name to ``(builder, input_shape)``; :func:`build_reference` returns
the model in eval mode with deterministic, non-trivial weights (BatchNorm is not an identity).

==============  ==========================================  ================
name            network                                     input
==============  ==========================================  ================
resnet18        ResNet-18, width 64, 1000 classes           1x3x224x224
resnet18-tiny   ResNet-18, width 8, 10 classes              1x3x64x64
yolo            YOLOv8n-like, width 16, depth 1, 80 classes 1x3x640x640
yolo-tiny       width 4, depth 1, 4 classes                 1x3x64x64
ufld            UFLD v1 TuSimple (ResNet-18, 101x56x4)      1x3x288x800
ufld-tiny       width 8, hidden 64, 11x8x4                  1x3x64x128
==============  ==========================================  ================
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import torch
from torch import nn

from .lenet import LeNet5, LeNet300
from .resnet import ResNet, ResNetBackbone, resnet, resnet18, resnet34, resnet_backbone
from .small_resnet import SmallResNet
from .ufld import UFLD, ufld
from .yolo import YOLO, yolo

__all__ = [
    "REFERENCE_MODELS",
    "ReferenceModel",
    "build_reference",
    "randomize_batchnorm",
    "ResNet",
    "ResNetBackbone",
    "UFLD",
    "YOLO",
    "resnet",
    "resnet18",
    "resnet34",
    "resnet_backbone",
    "ufld",
    "yolo",
]


class ReferenceModel(NamedTuple):
    builder: Callable[[], nn.Module]
    input_shape: tuple[int, ...]


REFERENCE_MODELS: dict[str, ReferenceModel] = {
    "resnet18": ReferenceModel(functools.partial(resnet18, num_classes=1000, width=64), (1, 3, 224, 224)),
    "resnet18-tiny": ReferenceModel(functools.partial(resnet18, num_classes=10, width=8), (1, 3, 64, 64)),
    "yolo": ReferenceModel(
        functools.partial(yolo, num_classes=80, width=16, depth=1, input_size=(640, 640)), (1, 3, 640, 640)
    ),
    "yolo-tiny": ReferenceModel(
        functools.partial(yolo, num_classes=4, width=4, depth=1, input_size=(64, 64)), (1, 3, 64, 64)
    ),
    "ufld": ReferenceModel(
        functools.partial(ufld, griding_num=100, num_row_anchors=56, num_lanes=4, input_size=(288, 800)),
        (1, 3, 288, 800),
    ),
    "ufld-tiny": ReferenceModel(
        functools.partial(
            ufld, griding_num=10, num_row_anchors=8, num_lanes=4, input_size=(64, 128), width=8, hidden=64
        ),
        (1, 3, 64, 128),
    ),
    "lenet5": ReferenceModel(LeNet5, (1, 1, 28, 28)),
    "lenet300": ReferenceModel(LeNet300, (1, 1, 28, 28)),
    "small-resnet": ReferenceModel(SmallResNet, (1, 1, 28, 28)),
}


def _uniform(generator: torch.Generator, shape: torch.Size, low: float, high: float) -> torch.Tensor:
    return torch.rand(shape, generator=generator) * (high - low) + low


@torch.no_grad()
def randomize_batchnorm(
    model: nn.Module,
    example: torch.Tensor,
    generator: torch.Generator,
    mean_shift: float = 0.1,
    log_var_scale: float = 0.2,
) -> None:
    """Give every BatchNorm a random affine transform and running statistics that are close to the
    real statistics of its input on ``example`` but not equal to them.

    * weight ~ U(0.5, 1.5), bias ~ N(0, 0.2);
    * running_mean = mean + N(0, mean_shift) * std, running_var = var * exp(N(0, log_var_scale)),
      where mean/var are the per-channel statistics of the layer's input in eval mode on
      ``example``. They are measured in one eval-mode forward with pre-hooks, so each layer sees
      the already-randomised layers upstream exactly as inference will.

    So BN is never an identity (nor a pure normalisation), while the activations stay about as
    well scaled as with trained statistics. The model is left in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    noise = {}
    for bn in bns:
        if bn.affine:
            bn.weight.copy_(_uniform(generator, bn.weight.shape, 0.5, 1.5))
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=generator) * 0.2)
        noise[bn] = (
            torch.randn(bn.num_features, generator=generator) * mean_shift,
            torch.exp(torch.randn(bn.num_features, generator=generator) * log_var_scale),
        )

    def pre_hook(bn: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0]
        dims = [0, *range(2, x.dim())]
        var, mean = torch.var_mean(x, dim=dims, unbiased=False)
        shift, scale = noise[bn]
        bn.running_mean.copy_(mean + shift * var.sqrt())
        bn.running_var.copy_((var * scale).clamp_min(1e-3))
        bn.num_batches_tracked.fill_(1)

    model.eval()
    handles = [bn.register_forward_pre_hook(pre_hook) for bn in bns]
    try:
        if bns:
            model(example)
    finally:
        for h in handles:
            h.remove()


def _calibration_batch(input_shape: tuple[int, ...]) -> int:
    # Enough samples per channel at stride 32 for stable statistics, without slowing big models.
    cells = max(1, (input_shape[-2] // 32) * (input_shape[-1] // 32))
    return max(2, min(16, -(-256 // cells)))


def build_reference(name: str, seed: int = 0) -> nn.Module:
    """Build reference model ``name`` in eval mode with deterministic weights.

    Conv/Linear layers keep their default initialisation (drawn after ``torch.manual_seed(seed)``;
    the global RNG state is restored afterwards); BatchNorm layers are randomised and calibrated on
    a seeded N(0, 1) batch of the default input shape (see :func:`randomize_batchnorm`).
    """
    try:
        spec = REFERENCE_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown reference model {name!r}; choose from {sorted(REFERENCE_MODELS)}") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.builder()
    generator = torch.Generator().manual_seed(seed + 1)
    calib_shape = (_calibration_batch(spec.input_shape), *spec.input_shape[1:])
    example = torch.randn(calib_shape, generator=generator)
    randomize_batchnorm(model, example, generator)
    return model.eval()
