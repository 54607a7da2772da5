"""Magnitude pruning: the baseline every other method must beat.

oneshot: project every planned weight onto its pattern (keep the largest magnitudes), then
  optionally fine-tune with the masks held fixed.
gradual: prune while training, raising each layer's sparsity along the cubic ramp
  s(t) = s_final * (1 - (1 - t / T)^3) of gradual magnitude pruning (Zhu & Gupta, 2017),
  updating the masks every `prune_every` steps until T = ramp_fraction of the run, then
  fine-tuning with the final masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ..errors import ConfigError
from ..sparsity import compute_masks
from ..training import MaskSet, OptimizerConfig, TrainingHooks
from .base import Method, MethodResult, MetricsAfterPruning, PruneContext, option, register_method


def prune_to_plan(module, plan, pattern, targets: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Masks for the current weights (optionally at other per-layer targets), applied in place."""
    if targets is not None:
        plan = replace(plan, targets=targets)
    weights = {name: module.parameter(name).detach() for name in plan.targets}
    masks = compute_masks(weights, module.weights, plan, pattern)
    MaskSet(masks).apply(module)
    return masks


def cubic_ramp(step: int, ramp_steps: int) -> float:
    """Fraction of the final sparsity reached after `step` of `ramp_steps` steps."""
    progress = min(max(step / max(ramp_steps, 1), 0.0), 1.0)
    return 1.0 - (1.0 - progress) ** 3


DEFAULT_EPOCHS_WITH_DATA = 3


@register_method("magnitude")
class MagnitudePruning(Method):
    @dataclass(frozen=True)
    class Config:
        epochs: int | None = option(None, "Fine-tuning epochs with the masks fixed (gradual: epochs of pruning while training)",
                                    default_text=f"{DEFAULT_EPOCHS_WITH_DATA} with training data, 0 without")
        retrain_epochs: int = option(0, "More fine-tuning epochs (the same phase), so budgets compare with SLR/ADMM")
        schedule: str = option("oneshot", "Prune once then fine-tune, or prune gradually (cubic ramp) while training",
                               choices=("oneshot", "gradual"))
        optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
        prune_every: int = 0  # gradual: optimizer steps between mask updates (0 = 4 per epoch)
        ramp_fraction: float = 0.75  # gradual: share of the run over which sparsity ramps up

        def __post_init__(self):
            if self.schedule not in ("oneshot", "gradual"):
                raise ConfigError(f"unknown schedule {self.schedule!r}; choose oneshot or gradual")
            if self.schedule == "gradual" and self.epochs is not None and self.epochs < 1:
                raise ConfigError("--schedule gradual prunes while training: give --epochs 1 or more")
            if not 0 < self.ramp_fraction <= 1:
                raise ConfigError(f"ramp fraction must be in (0, 1], got {self.ramp_fraction}")

    def __init__(self, config, has_training_data: bool = True):
        if config.epochs is None:  # one-shot without data; fine-tuning when there is data to tune on
            config = replace(config, epochs=DEFAULT_EPOCHS_WITH_DATA if has_training_data else 0)
        if config.schedule == "gradual" and config.epochs < 1:
            raise ConfigError("--schedule gradual prunes while training: give --epochs 1 or more")
        super().__init__(config, has_training_data)

    def requires_data(self) -> bool:
        return self.training_epochs > 0

    @property
    def training_epochs(self) -> int:
        return self.config.epochs + self.config.retrain_epochs

    def run(self, ctx: PruneContext) -> MethodResult:
        if self.config.schedule == "gradual":
            return MethodResult(self._gradual(ctx))
        session = ctx.session

        pruned = session.prune_once("prune", lambda: {"masks": prune_to_plan(ctx.module, ctx.plan, ctx.pattern)})
        masks = MaskSet(pruned["masks"])
        session.train("finetune", self.training_epochs, self.config.optimizer, masks=masks)
        return MethodResult(masks, MetricsAfterPruning("one-shot", pruned["metrics"], "after one-shot pruning, before fine-tuning",
                                                       pruned.get("recalibrated")))

    def _gradual(self, ctx: PruneContext) -> MaskSet:
        if not ctx.pattern.elementwise_magnitude:
            raise ConfigError("--schedule gradual ramps unstructured sparsity; use --pattern unstructured")
        session = ctx.session
        steps_per_epoch = len(torch.utils.data.DataLoader(session.train_data, batch_size=session.config.batch_size))
        total = self.training_epochs * steps_per_epoch
        ramp = max(int(self.config.ramp_fraction * total), 1)
        every = self.config.prune_every or max(steps_per_epoch // 4, 1)
        masks = MaskSet({n: torch.ones_like(ctx.module.parameter(n), dtype=torch.bool) for n in ctx.plan.targets})
        hooks = GradualHooks(ctx, masks, ramp, every)
        session.train("gradual", self.training_epochs, self.config.optimizer, masks=masks, hooks=hooks)
        if hooks.fraction < 1.0:  # the ramp always ends at the target, even on short runs
            masks.update(prune_to_plan(ctx.module, ctx.plan, ctx.pattern))
        return masks


class GradualHooks(TrainingHooks):
    """Raises every layer's sparsity along the cubic ramp, recomputing masks from magnitudes."""

    def __init__(self, ctx: PruneContext, masks: MaskSet, ramp_steps: int, every: int):
        self.ctx, self.masks, self.ramp_steps, self.every = ctx, masks, ramp_steps, every
        self.fraction = 0.0

    def after_step(self, step: int) -> None:
        if step % self.every and step != self.ramp_steps:
            return
        fraction = cubic_ramp(step, self.ramp_steps)
        if fraction <= self.fraction:
            return
        self.fraction = fraction
        targets = {name: target * fraction for name, target in self.ctx.plan.targets.items()}
        self.masks.update(prune_to_plan(self.ctx.module, self.ctx.plan, self.ctx.pattern, targets))

    def end_epoch(self, epoch: int) -> dict:
        return {"ramp": self.fraction}

    def state_dict(self) -> dict:
        return {"fraction": self.fraction}

    def load_state_dict(self, state: dict) -> None:
        self.fraction = state["fraction"]
