"""The thresholds OLMP optimises and one search call over them (olmp.md §1, §3 step 3, §5, §6).

Decision variables are per-layer c-rates: layer l keeps the entries of its weight and bias whose
magnitude clears T_l(c_l) = max(mu_l + c_l sigma_l, 0) (with hysteresis). A search call minimises

    fitness(c) = cost(masks(c))  if the constraint holds,  else 1.1  (death penalty)

over the c-rates of the selected layers with NCS, starting from the current c. cost is the kept
fraction of all pruned parameters ("params") or of all multiply-adds ("flops"). Every candidate
is built from a snapshot of the masks taken before the call, so candidates do not depend on the
order they are evaluated in (the reference mutated the live masks, §6).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ...search.ncs import NCSConfig, ncs_minimize
from ...sparsity.hysteresis import MagnitudeStats, refresh_mask
from .constraint import Constraint, ConstraintSet

INFEASIBLE = 1.1  # death-penalty fitness: worse than any kept fraction in [0, 1]
CLIP_MARGIN = 1e-4  # OLMP clips c-rates to [lb + margin, ub - margin] (§5)


@dataclass(frozen=True)
class Layer:
    """A pruned layer: its weight and bias share one threshold; `element_cost` weighs each entry in
    the cost (1 for params; the weight's output positions for flops, 0 for the bias)."""

    name: str  # the weight's ONNX name
    tensors: tuple[str, ...]  # weight, then bias when there is one
    is_conv: bool
    element_cost: tuple[float, ...]  # per tensor

    def total_cost(self, module) -> float:
        return sum(w * module.parameter(t).numel() for t, w in zip(self.tensors, self.element_cost))


class SurgeryState:
    """Everything the pruning-and-adjusting phase carries from step to step (and checkpoints)."""

    def __init__(self, dense: dict, masks: dict, c_rates: np.ndarray, stats: list[MagnitudeStats], searches: list):
        self.dense = dense  # theta, unmasked: what training updates (straight-through)
        self.masks = masks  # True = kept
        self.c_rates = np.asarray(c_rates, dtype=float)
        self.stats = stats  # frozen from the dense model
        self.searches = searches  # one record per search call

    def state_dict(self) -> dict:
        return {"dense": self.dense, "masks": self.masks, "c_rates": self.c_rates.tolist(),
                "stats": [(s.mean, s.std) for s in self.stats], "searches": self.searches}

    @classmethod
    def from_state_dict(cls, state: dict) -> "SurgeryState":
        stats = [MagnitudeStats(mean, std) for mean, std in state["stats"]]
        return cls({k: v.clone() for k, v in state["dense"].items()}, {k: v.clone() for k, v in state["masks"].items()},
                   np.array(state["c_rates"]), stats, list(state["searches"]))


class ThresholdSearch:
    def __init__(self, module, layers: list[Layer], constraint: Constraint, constraint_set: ConstraintSet, *,
                 baseline: str, dense_metric: float, c_max: float, population: int, budget: int):
        self.module = module
        self.layers = layers
        self.constraint = constraint
        self.constraint_set = constraint_set
        self.baseline = baseline  # "dense": the bound is from the dense model; "current": from the net before each call
        self.dense_metric = dense_metric
        self.c_max = c_max
        self.population = population
        self.budget = budget
        self._total_cost = sum(layer.total_cost(module) for layer in layers)

    # ---- state ---------------------------------------------------------------------------------
    @torch.no_grad()
    def initial_state(self, c_rate: float) -> SurgeryState:
        """Dense weights, frozen statistics, all-kept masks and every layer at `c_rate`."""
        dense = {t: self.module.parameter(t).detach().clone() for layer in self.layers for t in layer.tensors}
        stats = [MagnitudeStats.of([dense[t] for t in layer.tensors]) for layer in self.layers]
        masks = {t: torch.ones_like(v, dtype=torch.bool) for t, v in dense.items()}
        return SurgeryState(dense, masks, np.full(len(self.layers), c_rate), stats, [])

    def refresh(self, state: SurgeryState, layer_indices, c_rates=None, masks=None) -> dict:
        """Masks after refreshing the given layers (from `masks`, default the state's) at their c-rates."""
        masks = dict(state.masks if masks is None else masks)
        c_rates = state.c_rates if c_rates is None else c_rates
        for i in layer_indices:
            threshold = state.stats[i].threshold(c_rates[i])
            for t in self.layers[i].tensors:
                masks[t] = refresh_mask(masks[t], state.dense[t], threshold)
        return masks

    @torch.no_grad()
    def write(self, state: SurgeryState, masks: dict | None = None, tensors=None) -> None:
        """Put theta * mask into the module's parameters (what the forward pass sees)."""
        masks = state.masks if masks is None else masks
        for t in tensors if tensors is not None else state.dense:
            self.module.parameter(t).copy_(state.dense[t] * masks[t])

    def cost(self, masks: dict) -> float:
        kept = sum(w * int(masks[t].sum()) for layer in self.layers for t, w in zip(layer.tensors, layer.element_cost))
        return kept / self._total_cost if self._total_cost else 0.0

    def kept_fractions(self, masks: dict) -> list[float]:
        fractions = []
        for layer in self.layers:
            kept = sum(int(masks[t].sum()) for t in layer.tensors)
            fractions.append(kept / sum(masks[t].numel() for t in layer.tensors))
        return fractions

    # ---- one search call --------------------------------------------------------------------------
    def search(self, state: SurgeryState, selected: list[int], *, sigma: float, seed: int, step: int) -> dict:
        """Optimise the c-rates of `selected` from their current values; updates `state` in place."""
        started = time.perf_counter()
        snapshot = dict(state.masks)
        touched = [t for i in selected for t in self.layers[i].tensors]
        self.write(state, snapshot)
        metric_before = self.constraint_set.measure(self.module)
        baseline = self.dense_metric if self.baseline == "dense" else metric_before
        c_before = state.c_rates.copy()

        def fitness(x: np.ndarray) -> float:
            c_rates = state.c_rates.copy()
            c_rates[selected] = x
            masks = self.refresh(state, selected, c_rates, snapshot)
            self.write(state, masks, touched)
            if not self.constraint.feasible(self.constraint_set.measure(self.module), baseline):
                return INFEASIBLE
            return self.cost(masks)

        config = NCSConfig(population=self.population, sigma_mode="absolute", sigma0=sigma, bounds="clip",
                           clip_margin=CLIP_MARGIN, infeasible_value=INFEASIBLE, budget=self.budget, seed=seed)
        lower, upper = np.zeros(len(selected)), np.full(len(selected), self.c_max)
        x0 = np.clip(state.c_rates[selected], lower, upper)
        result = ncs_minimize(fitness, lower, upper, config, x0=x0)

        state.c_rates[selected] = result.best_x
        state.masks = self.refresh(state, selected, state.c_rates, snapshot)
        self.write(state)
        record = {
            "call": len(state.searches), "step": step, "selected": [self.layers[i].name for i in selected],
            "sigma": sigma, "c_before": c_before.tolist(), "c_after": state.c_rates.tolist(),
            "baseline": baseline, "metric_before": metric_before, "cost_before": self.cost(snapshot),
            "metric_after": self.constraint_set.measure(self.module),
            "feasible": bool(result.best_f < INFEASIBLE), "cost_after": self.cost(state.masks),
            "kept_fractions": self.kept_fractions(state.masks), "evaluations": result.evaluations,
            "replacements": result.replacements, "seconds": time.perf_counter() - started,
        }
        state.searches.append(record)
        return record
