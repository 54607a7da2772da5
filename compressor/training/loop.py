"""One epoch of masked training, and the hooks methods use to shape it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from ..objectives.base import Objective
from .masks import MaskSet


class TrainingHooks:
    """What a method adds to the shared loop. Every hook is optional.

    extra_loss: a penalty added to the objective (SLR/ADMM's augmented Lagrangian terms).
    before_step: runs after the backward pass, before the optimizer step (OLMP swaps its dense
      weights back in here, so the gradient of the masked forward updates them: straight-through).
    after_step: runs after each optimizer step and mask application (gradual pruning).
    end_epoch: runs after each epoch; its dict goes into the optimisation trace.
    state_dict/load_state_dict: whatever must survive an interruption.
    """

    def extra_loss(self, module) -> torch.Tensor | None:
        return None

    def before_step(self, step: int) -> None:
        pass

    def after_step(self, step: int) -> None:
        pass

    def end_epoch(self, epoch: int) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    seed: int = 0
    eval_batch_size: int | None = None  # None: max(batch_size, 256)
    folded_batchnorm: bool = False  # train folded convs with BatchNorm put back (training/folded_batchnorm.py)
    recalibrate_batchnorm: bool = False  # after hard pruning, folded convs' statistics re-estimated (Session.prune_once)
    augment: object = None  # the task's training augmentation, (x, labels, generator) -> (x, labels); None: none


def samples_in(x) -> int:
    """Samples in a batch: a tensor, or a list of tensors (one per input of a multi-input model)."""
    first = x[0] if isinstance(x, (list, tuple)) else x
    return int(first.shape[0])


def loader_for_epoch(dataset, batch_size: int, seed: int, step_index: int, epoch: int) -> DataLoader:
    """A loader whose shuffle depends only on (seed, phase, epoch): resuming replays it exactly."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step_index * 1_009 + epoch)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator, num_workers=0)


def train_one_epoch(
    module, objective: Objective, loader: DataLoader, optimizer, scheduler, *,
    teacher=None, masks: MaskSet | None = None, hooks: TrainingHooks | None = None,
    step: int = 0, progress=None, augment=None, generator: torch.Generator | None = None,
) -> tuple[float, int]:
    """Returns (mean loss, global step after the epoch). `augment(x, labels, generator)`, when
    given, transforms each batch (the teacher sees the transformed inputs too)."""
    hooks = hooks or TrainingHooks()
    module.train()
    total, count = 0.0, 0
    for batch in loader:
        x, labels = batch[0], (batch[1] if len(batch) > 1 else None)
        if augment is not None:
            x, labels = augment(x, labels, generator)
        outputs = module(x)
        teacher_outputs = None
        if objective.needs_teacher:
            with torch.no_grad():
                teacher_outputs = teacher(x)
        loss = objective.loss(outputs, labels, teacher_outputs)
        extra = hooks.extra_loss(module)
        objective_loss = float(loss.detach())
        if extra is not None:
            loss = loss + extra
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if masks:
            masks.mask_gradients(module)
        hooks.before_step(step + 1)
        optimizer.step()
        scheduler.step()
        if masks:
            masks.apply(module)  # pruned weights stay exactly zero
        step += 1
        hooks.after_step(step)
        total += objective_loss * samples_in(x)
        count += samples_in(x)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{objective_loss:.4f}")
    return total / max(count, 1), step
