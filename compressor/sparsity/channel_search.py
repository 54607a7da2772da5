"""Per-group channel counts found by search: the project's NCS (compressor/search) looks for the
kept fraction of every prunable channel group that minimises a cost (the latency predicted on the
target runtime from a per-layer table, runtimes/layer_latency.py; the multiply-adds; the
parameters) subject to a bound the caller checks (OLMP's accuracy constraint, measured with the
channels pruned one-shot: the only bound that can be checked for every candidate).

A candidate x in [min_keep, 1]^G holds one kept fraction per group; its counts are rounded like
the uniform plan's (`--round-to`). An infeasible candidate scores 1 + its violation, so any
feasible one (score = cost / dense cost <= 1) wins; the dense network (x = 1) is the start and is
always feasible, so the result never breaks the bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..search.ncs import NCSConfig, ncs_minimize
from .selection import align_count

Keeps = dict[int, int]  # group id -> channels kept


@dataclass
class SearchOutcome:
    objective: str
    keeps: Keeps
    cost: float  # the objective's value at the result (ms or multiply-adds)
    dense_cost: float
    violation: float  # how far the result is beyond the bound (0: within it)
    evaluations: int
    feasible_seen: int
    history: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"objective": self.objective, "cost": self.cost, "dense_cost": self.dense_cost,
                "cost_ratio": self.cost / self.dense_cost if self.dense_cost else None,
                "evaluations": self.evaluations, "feasible_seen": self.feasible_seen,
                "keeps": {str(k): v for k, v in self.keeps.items()}}


def keeps_of(x: np.ndarray, sizes: Sequence[tuple[int, int]], round_to: int) -> Keeps:
    """Kept channel counts from kept fractions, rounded to the alignment."""
    return {gid: align_count(max(1, int(math.ceil(f * size))), size, round_to) for (gid, size), f in zip(sizes, x)}


def search_keeps(sizes: Sequence[tuple[int, int]], cost: Callable[[Keeps], float], violation: Callable[[Keeps], float],
                 *, objective: str, round_to: int = 8, budget: int = 200, min_keep: float = 0.1, sigma: float = 0.3,
                 population: int = 10, seed: int = 0, log=lambda message: None) -> SearchOutcome:
    """The kept counts of the groups `sizes` ((group id, channels)) minimising `cost` with
    `violation` (0 within the bound, else how far beyond) at 0."""
    dense = {gid: size for gid, size in sizes}
    dense_cost = cost(dense)
    seen: dict[tuple, tuple[float, float]] = {}
    feasible = [0]

    def score(x: np.ndarray) -> float:
        keeps = keeps_of(x, sizes, round_to)
        key = tuple(keeps[g] for g, _ in sizes)
        if key not in seen:
            v = violation(keeps)
            c = cost(keeps)
            seen[key] = (c, v)
            feasible[0] += v <= 0
        c, v = seen[key]
        return c / dense_cost if v <= 0 else 1.0 + v

    dim = len(sizes)
    config = NCSConfig(population=max(2, population), budget=budget, seed=seed, bounds="clip", sigma0=sigma,
                       infeasible_value=1.0)

    def progress(generation: int, best_x: np.ndarray, best_f: float):
        if generation % 5 == 0:
            log(f"channel search ({objective}): generation {generation}, best {best_f:.3f} of dense")

    result = ncs_minimize(score, np.full(dim, min_keep), np.ones(dim), config, x0=np.ones(dim), callback=progress)
    keeps = keeps_of(result.best_x, sizes, round_to)
    c, v = seen[tuple(keeps[g] for g, _ in sizes)]
    if v > 0:  # only when even the dense counts break the bound: keep them
        keeps, c, v = dense, dense_cost, violation(dense)
    return SearchOutcome(objective, keeps, c, dense_cost, v, result.evaluations, feasible[0], list(result.history))
