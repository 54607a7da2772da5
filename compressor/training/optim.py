"""Optimizer and learning-rate schedule from a small typed config."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
# Each optimizer's learning rate when none is given: a method's default lr belongs to its default
# optimizer, so naming another optimizer takes that one's default (Adam at SGD's 0.01 diverges).
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3}
SCHEDULES = ("constant", "cosine", "step")


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    schedule: str = "cosine"  # per step, over the phase

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.name!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be positive, got {self.lr}")

    def to_dict(self) -> dict:
        return asdict(self)


def build_optimizer(params, config: OptimizerConfig, total_steps: int):
    """A fresh optimizer and its per-step scheduler (a fresh state for every training phase)."""
    params = [p for p in params if p.requires_grad]
    if config.name == "sgd":
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    elif config.name == "adam":
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    total_steps = max(total_steps, 1)
    if config.schedule == "constant":
        factor = lambda step: 1.0  # noqa: E731
    elif config.schedule == "cosine":
        factor = lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))  # noqa: E731
    else:  # step: divide by 10 at 50% and 75% of the phase
        factor = lambda step: 0.1 ** ((step >= total_steps // 2) + (step >= 3 * total_steps // 4))  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return optimizer, scheduler
