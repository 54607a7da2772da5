"""ADMM pruning (Zhang et al., ECCV 2018), the baseline SLR is compared with: the same penalty,
projections, hard pruning and retraining; a fixed dual step and no acceptance conditions.
Every `admm_interval` epochs: Z <- Pi_S(W + U), then U <- U + W - Z (i.e. Lambda += rho (W - Z))."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .base import PruneContext, option, register_method
from .lagrangian import LagrangianMethod, PenaltyHooks, current_weights, project


def admm_block(state: dict, weights: dict[str, torch.Tensor], projection) -> None:
    """One ADMM dual update (scaled form). Mutates `state` (Z, U)."""
    z = projection({n: weights[n] + state["U"][n] for n in weights})
    state["U"] = {n: state["U"][n] + weights[n] - z[n] for n in weights}
    state["Z"] = z


@register_method("admm")
class ADMMPruning(LagrangianMethod):
    @dataclass(frozen=True)
    class Config(LagrangianMethod.Config):
        admm_interval: int = option(1, "Epochs between dual updates")

        def __post_init__(self):
            super().__post_init__()
            if self.admm_interval < 1:
                raise ConfigError(f"--admm-interval must be at least 1, got {self.admm_interval}")

    def initial_state(self, ctx: PruneContext) -> dict:
        weights = current_weights(ctx)
        return {"Z": project(ctx, weights), "U": {n: torch.zeros_like(w) for n, w in weights.items()}}

    def make_hooks(self, ctx: PruneContext, state: dict) -> PenaltyHooks:
        return ADMMHooks(self, ctx, state)


class ADMMHooks(PenaltyHooks):
    def __init__(self, method: ADMMPruning, ctx: PruneContext, state: dict):
        super().__init__(ctx, state, method.config.rho, method.config.epochs, method.config.growth())
        self.interval = method.config.admm_interval

    def block(self, weights, epoch):
        updated = epoch % self.interval == 0
        if updated:
            admm_block(self.state, weights, lambda t: project(self.ctx, t))
        return {"s": self.state["rho"], "dual_update": updated}
