"""SLR: surrogate Lagrangian relaxation pruning (Gurevin et al., IJCAI 2021), as specified in
../shared/specs/slr.md sections 2-5, without the reference code's defects (section 8).

After each W-step (except the last), one block:
  C1: L~(W) < L~(W_bar), L~(A) = f(A) + sum (rho/2)||A - Z + U||^2, f on a fixed condition set
      -> half step: s <- alpha_k s N(W_bar, Z)/N(W, Z); Lambda += s (W - Z); k += 1; W_bar <- W
  Z-step: U <- Lambda/rho; Z <- Pi_S(W + U)
  C2: sum (rho/2)||W - Z + U||^2 < sum (rho/2)||W - Z_old + U||^2
      -> full step: s <- alpha_k s N(W_bar, Z_old)/N(W, Z); Lambda += s (W - Z); k += 1; W_bar <- W
  U <- Lambda/rho
with alpha_k = 1 - 1/(M k^(1 - k^-r)), k taken before it is incremented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import ConfigError
from .base import PruneContext, option, register_method
from ..training.loop import samples_in
from .lagrangian import RHO_FINAL_HELP, LagrangianMethod, PenaltyHooks, Rho, current_weights, frobenius_sum, penalty, project, rho_of

Tensors = dict[str, torch.Tensor]


def alpha(k: int, M: float, r: float) -> float:
    """The contraction factor alpha_k = 1 - 1/(M k^{p_k}), p_k = 1 - k^{-r}."""
    p = 1.0 - k ** (-r)
    return 1.0 - 1.0 / (M * k**p)


def scaled_step(s: float, k: int, M: float, r: float, previous_norm: float, new_norm: float) -> float:
    """s <- alpha_k s N_prev / N_new; unchanged when either norm is 0."""
    if previous_norm == 0.0 or new_norm == 0.0:
        return s
    return alpha(k, M, r) * s * previous_norm / new_norm


def slr_block(state: dict, weights: Tensors, f_weights: float, projection: Callable[[Tensors], Tensors],
              rho: Rho, M: float, r: float) -> dict:
    """One SLR multiplier/Z block (spec section 3.3). Mutates `state`; returns what happened.

    state: Z, U, Lambda, W_bar (snapshots), f_bar, s, k. `weights` is a detached snapshot of the
    current W and `f_weights` = f(W) on the condition set.
    """
    z, u, lam = state["Z"], state["U"], state["Lambda"]
    # C1: the W-step must lower the surrogate Lagrangian (same U on both sides)
    surrogate_new = f_weights + float(penalty(weights, z, u, rho))
    surrogate_old = state["f_bar"] + float(penalty(state["W_bar"], z, u, rho))
    c1 = surrogate_new < surrogate_old
    if c1:  # half step
        _take_step(state, weights, f_weights, previous=frobenius_sum(state["W_bar"], z), z=z, M=M, r=r)
    # Z-step: the exact minimiser over the feasible set
    u = {n: lam[n] / rho_of(rho, n) for n in lam}
    z_old = z
    z = projection({n: weights[n] + u[n] for n in weights})
    c2 = float(penalty(weights, z, u, rho)) < float(penalty(weights, z_old, u, rho))
    if c2:  # full step
        _take_step(state, weights, f_weights, previous=frobenius_sum(state["W_bar"], z_old), z=z, M=M, r=r)
    state["Z"] = z
    state["U"] = {n: lam[n] / rho_of(rho, n) for n in lam}
    return {"c1": c1, "c2": c2, "surrogate": surrogate_new, "surrogate_prev": surrogate_old}


def _take_step(state: dict, weights: Tensors, f_weights: float, previous: float, z: Tensors, M: float, r: float) -> None:
    """An accepted multiplier step: s <- alpha_k s previous / N(W, Z); Lambda += s (W - Z);
    k += 1; W_bar <- copy(W); f_bar <- f(W)."""
    state["s"] = scaled_step(state["s"], state["k"], M, r, previous, frobenius_sum(weights, z))
    lam = state["Lambda"]
    for n in lam:
        lam[n] = lam[n] + state["s"] * (weights[n] - z[n])
    state["k"] += 1
    state["W_bar"] = {n: w.clone() for n, w in weights.items()}
    state["f_bar"] = f_weights


class ConditionSet:
    """A fixed list of training minibatches (seeded, drawn once), evaluated in inference mode:
    f(A) is the mean objective loss over them."""

    def __init__(self, ctx: PruneContext, indices: list[int]):
        self.ctx, self.indices = ctx, indices

    @classmethod
    def draw(cls, ctx: PruneContext, batches: int, seed: int) -> "ConditionSet":
        n = len(ctx.session.train_data)
        size = min(n, batches * ctx.session.config.batch_size)
        generator = torch.Generator().manual_seed(seed * 7_919 + 17)
        return cls(ctx, torch.randperm(n, generator=generator)[:size].tolist())

    @torch.no_grad()
    def loss(self) -> float:
        session = self.ctx.session
        module = self.ctx.module
        was_training = module.training
        module.eval()
        subset = torch.utils.data.Subset(session.train_data, self.indices)
        loader = torch.utils.data.DataLoader(subset, batch_size=session.config.batch_size)
        total, count = 0.0, 0
        for batch in loader:
            x, labels = batch[0], (batch[1] if len(batch) > 1 else None)
            teacher = session.teacher(x) if session.objective.needs_teacher else None
            total += float(session.objective.loss(module(x), labels, teacher)) * samples_in(x)
            count += samples_in(x)
        module.train(was_training)
        return total / max(count, 1)


@register_method("slr")
class SLRPruning(LagrangianMethod):
    @dataclass(frozen=True)
    class Config(LagrangianMethod.Config):
        slr_M: float = option(300.0, "Step-size constant M > 1", flag="--slr-M")
        slr_r: float = option(0.1, "Step-size exponent r in (0, 1)")
        slr_s0: float = option(0.01, "Initial step size s0")
        condition_batches: int = option(16, "Minibatches in the fixed set the surrogate conditions are measured on")
        # SLR's defaults, measured (docs/benchmarks.md, issue 14): rho grown 0.1 -> 4 and s with it
        # brought every layer of three small ResNets within 2.6% of Z at 80% sparsity (hard-pruned
        # 93.0-96.5% recalibrated); a fixed rho left layers up to 21% away
        rho_final: float | None = option(4.0, RHO_FINAL_HELP)
        slr_step_follows_rho: bool = option(True, "With a growing rho, multiply the step size s by the same factor, so "
                                                  "the relative multiplier step s/rho follows SLR's own rule only")

        def __post_init__(self):
            super().__post_init__()
            if not self.slr_M > 1:
                raise ConfigError(f"--slr-M must be greater than 1, got {self.slr_M}")
            if not 0 < self.slr_r < 1:
                raise ConfigError(f"--slr-r must be in (0, 1), got {self.slr_r}")
            if not self.slr_s0 > 0:
                raise ConfigError(f"--slr-s0 must be positive, got {self.slr_s0}")
            if self.condition_batches < 1:
                raise ConfigError(f"--condition-batches must be at least 1, got {self.condition_batches}")

    def initial_state(self, ctx: PruneContext) -> dict:
        weights = current_weights(ctx)
        conditions = ConditionSet.draw(ctx, self.config.condition_batches, ctx.session.config.seed)
        return {
            "Z": project(ctx, weights),
            "U": {n: torch.zeros_like(w) for n, w in weights.items()},
            "Lambda": {n: torch.zeros_like(w) for n, w in weights.items()},
            "W_bar": weights,
            "f_bar": conditions.loss(),
            "s": self.config.slr_s0,
            "k": 1,
            "condition_indices": conditions.indices,
        }

    def make_hooks(self, ctx: PruneContext, state: dict) -> PenaltyHooks:
        return SLRHooks(self, ctx, state)


class SLRHooks(PenaltyHooks):
    def __init__(self, method: SLRPruning, ctx: PruneContext, state: dict):
        super().__init__(ctx, state, method.config.rho, method.config.epochs, method.config.growth())
        self.method = method

    def block(self, weights, epoch):
        config = self.method.config
        conditions = ConditionSet(self.ctx, self.state["condition_indices"])  # fixed when the run began
        outcome = slr_block(self.state, weights, conditions.loss(), lambda t: project(self.ctx, t),
                            self.rho, config.slr_M, config.slr_r)
        return {"s": self.state["s"], "k": self.state["k"], "c1_accepted": outcome["c1"], "c2_accepted": outcome["c2"]}

    def grow_rho(self, rho: float) -> None:
        # SLR's Lambda steps are s (W - Z); ADMM's are rho (W - Z), so a growing rho grows ADMM's steps
        # with it while SLR's U = Lambda / rho moves less and less: optionally s follows rho
        if self.method.config.slr_step_follows_rho:
            self.state["s"] *= rho / self.state["rho"]
        super().grow_rho(rho)
