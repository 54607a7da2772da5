"""What SLR and ADMM share: the splitting W = Z, the scaled multipliers U, the penalty, and the
run structure (penalty training -> hard pruning -> masked retraining). See ../shared/specs/slr.md.

    min f(W) + sum_i g_i(Z_i)  s.t.  W_i = Z_i
    W-step: train on f(W) + sum_i (rho/2) ||W_i - Z_i + U_i||^2  (Z, U fixed, nothing masked)
    Z-step: Z_i = Pi_S(W_i + U_i)  (the pattern's projection, exact counts)
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field

import torch

from ..errors import ConfigError
from ..sparsity import compute_masks
from ..training import MaskSet, OptimizerConfig, TrainingHooks
from .base import Method, MethodResult, MetricsAfterPruning, PruneContext, option
from .magnitude import prune_to_plan


def project(ctx: PruneContext, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Pi_S for every tensor of the plan: the pattern's counted projection (global when the plan is)."""
    masks = compute_masks(tensors, ctx.module.weights, ctx.plan, ctx.pattern)
    return {name: tensor * masks[name] for name, tensor in tensors.items()}


def current_weights(ctx: PruneContext) -> dict[str, torch.Tensor]:
    """Detached copies: a snapshot, never a live reference (reference-code defect 1)."""
    return {name: ctx.module.parameter(name).detach().clone() for name in ctx.plan.targets}


def frobenius_sum(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """N(A, B) = sum_i ||A_i - B_i||_F (per-layer norms, summed)."""
    return float(sum(torch.linalg.vector_norm(a[n] - b[n]) for n in a))


def relative_distance(w: torch.Tensor, z: torch.Tensor) -> float:
    """||W - Z|| / ||W||: the share of a layer's weights the hard prune would still remove (0 when W
    already is its projection)."""
    norm = float(torch.linalg.vector_norm(w))
    return float(torch.linalg.vector_norm(w - z)) / norm if norm > 0 else 0.0


def penalty(weights: dict[str, torch.Tensor], z: dict[str, torch.Tensor], u: dict[str, torch.Tensor], rho: float):
    """sum_i (rho/2) ||W_i - Z_i + U_i||_F^2 (differentiable in W when W are live parameters)."""
    return sum((rho / 2.0) * (weights[n] - z[n] + u[n]).square().sum() for n in z)


@torch.no_grad()
def hard_prune_metrics(ctx: PruneContext) -> dict[str, float]:
    """What hard pruning now would give (evaluated on the validation split), weights restored after."""
    saved = current_weights(ctx)
    for name, value in project(ctx, saved).items():
        ctx.module.parameter(name).copy_(value)
    metrics = ctx.session.evaluate(ctx.module)
    for name, value in saved.items():
        ctx.module.parameter(name).copy_(value)
    return metrics


class LagrangianMethod(Method):
    """Penalty training for `epochs` epochs (one multiplier block per epoch, except after the
    last), then hard pruning (the 'no retraining' figure), then `retrain_epochs` of masked
    retraining with a fresh optimizer."""

    @dataclass(frozen=True)
    class Config:
        epochs: int = option(3, "Penalty-training epochs before hard pruning")
        retrain_epochs: int = option(3, "Masked retraining epochs after hard pruning")
        rho: float = option(0.1, "Penalty weight rho")
        rho_growth: float = option(1.0, "Multiply rho by this after each epoch's multiplier block (1: fixed rho, "
                                        "the paper's setting; above 1: a progressive rho that pulls W onto Z)")
        optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)

        def __post_init__(self):
            if self.epochs < 1:
                raise ConfigError("SLR/ADMM need at least one epoch of penalty training (--epochs 1 or more)")
            if self.retrain_epochs < 0:
                raise ConfigError(f"--retrain-epochs must be 0 or more, got {self.retrain_epochs}")
            if not self.rho > 0:
                raise ConfigError(f"--rho must be positive, got {self.rho}")
            if not self.rho_growth >= 1:
                raise ConfigError(f"--rho-growth must be 1 (fixed) or more, got {self.rho_growth}")

    def run(self, ctx: PruneContext) -> MethodResult:
        session = ctx.session
        state = session.once("init", lambda: self.initial_state(ctx))
        hooks = self.make_hooks(ctx, state)
        session.train(self.name, self.config.epochs, self.config.optimizer, masks=None, hooks=hooks)

        pruned = session.prune_once("hard_prune", lambda: {"masks": prune_to_plan(ctx.module, ctx.plan, ctx.pattern)})
        masks = MaskSet(pruned["masks"])
        session.train("retrain", self.config.retrain_epochs, self.config.optimizer, masks=masks)
        return MethodResult(masks, MetricsAfterPruning("hard-pruned", pruned["metrics"], "after hard pruning, before retraining",
                                                       pruned.get("recalibrated")))

    @abstractmethod
    def initial_state(self, ctx: PruneContext) -> dict: ...

    @abstractmethod
    def make_hooks(self, ctx: PruneContext, state: dict) -> "PenaltyHooks": ...


class PenaltyHooks(TrainingHooks):
    """Adds the proximal penalty to every W-step and runs the method's block after each epoch."""

    def __init__(self, ctx: PruneContext, state: dict, rho: float, epochs: int, rho_growth: float = 1.0):
        self.ctx, self.state, self.epochs, self.rho_growth = ctx, state, epochs, rho_growth
        self.state.setdefault("rho", rho)  # in the state: a progressive rho resumes where it was

    @property
    def rho(self) -> float:
        return self.state["rho"]

    def extra_loss(self, module):
        live = {name: module.parameter(name) for name in self.state["Z"]}
        return penalty(live, self.state["Z"], self.state["U"], self.rho)

    def end_epoch(self, epoch: int) -> dict:
        weights = current_weights(self.ctx)
        record = {
            "penalty": float(penalty(weights, self.state["Z"], self.state["U"], self.rho)),
            "w_minus_z": frobenius_sum(weights, self.state["Z"]),
            # per layer, relative to the layer's own scale: which layers the penalty has not yet
            # brought onto their projection (a sum of norms hides the small ones)
            "w_minus_z_relative": {n: relative_distance(weights[n], self.state["Z"][n]) for n in weights},
        }
        if epoch < self.epochs:  # no block after the last W-step: hard pruning follows
            record.update(self.block(weights, epoch))
            if self.rho_growth != 1.0:
                self.grow_rho(self.rho * self.rho_growth)
                record["rho"] = self.rho
        record.update({f"hard_prune_{k}": v for k, v in hard_prune_metrics(self.ctx).items()})
        return record

    def block(self, weights: dict[str, torch.Tensor], epoch: int) -> dict:
        """The method's multiplier/Z update after a W-step; returns trace entries."""
        raise NotImplementedError

    def grow_rho(self, rho: float) -> None:
        """A new rho with the multipliers Lambda = rho U unchanged: the scaled U is rescaled."""
        self.state["U"] = {n: u * (self.rho / rho) for n, u in self.state["U"].items()}
        self.state["rho"] = rho

    def state_dict(self) -> dict:
        return self.state

    def load_state_dict(self, state: dict) -> None:
        self.state = {"rho": self.state["rho"], **state}  # a checkpoint from before rho was kept there
