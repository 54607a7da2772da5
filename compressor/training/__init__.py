"""Masked training shared by every method: masks, optimizers, the epoch loop, checkpoints."""

from .checkpoint import Checkpoint
from .loop import TrainConfig, TrainingHooks, train_one_epoch
from .masks import MaskSet
from .optim import OptimizerConfig, build_optimizer
from .session import Session

__all__ = [
    "Checkpoint", "MaskSet", "OptimizerConfig", "Session", "TrainConfig", "TrainingHooks", "build_optimizer", "train_one_epoch",
]
