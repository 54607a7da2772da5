"""Negatively Correlated Search (NCS-C, Tang, Yang & Yao 2016) for box-bounded black-box minimisation.

Follows docs spec `olmp.md` §4 (canonical NCS) with the fixes of §5: a parent *is* replaced when the
canonical test passes (the released OLMP port never replaced one), optionally only by feasible trials.

N search processes each run a (1+1)-ES: process i is the Gaussian N(x_i, diag σ_i²). A trial replaces its
parent when λ_t·Ĉ' > f̂', i.e. when it is good enough relative to how far (Bhattacharyya distance) it moves
away from the other processes. Each σ_i follows the 1/5 success rule once per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np

from ..errors import ConfigError

Objective = Callable[[np.ndarray], float]
# callback(generation, best_x, best_f) is called after every generation; returning True stops the search.
Callback = Callable[[int, np.ndarray, float], "bool | None"]


@dataclass(frozen=True)
class NCSConfig:
    """Hyperparameters. `None` means the canonical default of spec §4 (resolved in `ncs_minimize`)."""

    population: int = 10  # N (§4 default 10)
    # Initial step size. "relative": a fraction of the box width per coordinate; None → 1/N, which gives the
    # canonical σ_init = (ub − lb)/N (§4). "absolute": the same σ in every coordinate (OLMP's `stepsize`, §5).
    sigma0: float | None = None
    sigma_mode: Literal["relative", "absolute"] = "relative"
    lambda_: float = 1.0  # mean of λ_t (§4: drawn from N(1, s_t))
    lambda_spread: float = 0.1  # s_0, the initial standard deviation of λ_t (§4)
    # "linear": s_t = s_0·(1 − t/(T_max/N)), shrinking to 0 at the end of the budget (§4, also OLMP §5).
    # "constant": s_t = s_0 throughout.
    lambda_schedule: Literal["linear", "constant"] = "linear"
    epoch_length: int | None = None  # generations between 1/5-rule updates; None → N (§4)
    r: float = 0.99  # 1/5-rule factor (§4)
    budget: int | None = None  # objective evaluations; None → 10000·D (§4)
    # "reflect" is canonical (§4); "clip" is OLMP's choice, to [lb + margin, ub − margin] (§5 uses 1e-4).
    bounds: Literal["reflect", "clip"] = "reflect"
    clip_margin: float = 0.0
    # Trials with f >= infeasible_value never replace a parent (§5: OLMP's death penalty is 1.1).
    infeasible_value: float | None = None
    # Replication only (§5): the released OLMP port also required f(trial) < 0 to replace a parent, so with
    # positive fitness nothing is ever replaced. Never use it for real searches.
    replicate_released_defect: bool = False
    seed: int = 0


@dataclass
class NCSResult:
    best_x: np.ndarray
    best_f: float
    evaluations: int
    history: list[float] = field(default_factory=list)  # best-so-far after each evaluation
    generations: int = 0
    replacements: int = 0  # parents replaced by their trial, over the whole run
    final_sigma: np.ndarray | None = None  # (N, D) step sizes at the end


def bhattacharyya_diag(
    mean_a: np.ndarray, var_a: np.ndarray, means_b: np.ndarray, vars_b: np.ndarray
) -> np.ndarray:
    """Bhattacharyya distance between N(mean_a, diag var_a) and each row of N(means_b, diag vars_b) (§4 step 2)."""
    var_avg = (var_a + vars_b) / 2.0
    delta = mean_a - means_b
    mahalanobis = np.sum(delta * delta / var_avg, axis=-1) / 8.0
    log_det_term = 0.5 * np.sum(np.log(var_avg) - 0.5 * (np.log(var_a) + np.log(vars_b)), axis=-1)
    return mahalanobis + log_det_term


def one_fifth_rule(sigma: np.ndarray, successes: np.ndarray, epoch_length: int, r: float) -> np.ndarray:
    """σ_i ← σ_i/r when over 1/5 of the epoch's trials succeeded, σ_i·r when fewer, unchanged at exactly 1/5."""
    rate = np.asarray(successes, dtype=float) / float(epoch_length)
    factor = np.where(rate > 0.2, 1.0 / r, np.where(rate < 0.2, r, 1.0))
    return np.asarray(sigma, dtype=float) * factor.reshape((-1,) + (1,) * (np.ndim(sigma) - 1))


def reflect_into_box(x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Mirror out-of-range coordinates at the bounds, repeatedly for far overshoots (period 2·width)."""
    width = upper - lower
    folded = np.mod(x - lower, 2.0 * width)
    return lower + (width - np.abs(folded - width))


def _safe_ratio(numerator: float, denominator: float) -> float:
    # §4 step 3 guard (toolchain choice): a zero denominator means "no preference", i.e. 0.5.
    return 0.5 if denominator == 0.0 else numerator / denominator


def _validate_box(lower, upper) -> tuple[np.ndarray, np.ndarray]:
    lower = np.asarray(lower, dtype=float).ravel()
    upper = np.asarray(upper, dtype=float).ravel()
    if lower.shape != upper.shape or lower.size == 0:
        raise ConfigError(f"search bounds must be non-empty and of equal length, got {lower.size} and {upper.size}")
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        raise ConfigError("search bounds must be finite")
    if np.any(upper <= lower):
        bad = int(np.argmax(upper <= lower))
        raise ConfigError(f"search bound {bad}: upper {upper[bad]} must exceed lower {lower[bad]}")
    return lower, upper


class _BudgetedObjective:
    """Counts evaluations, keeps the best-so-far and its per-evaluation history."""

    def __init__(self, objective: Objective, budget: int):
        self.objective = objective
        self.budget = budget
        self.evaluations = 0
        self.best_f = np.inf
        self.best_x: np.ndarray | None = None
        self.history: list[float] = []

    @property
    def exhausted(self) -> bool:
        return self.evaluations >= self.budget

    def __call__(self, x: np.ndarray) -> float:
        value = float(self.objective(x.copy()))
        if not np.isfinite(value):
            raise ConfigError(f"objective returned a non-finite value ({value}); use a finite penalty instead")
        self.evaluations += 1
        if value < self.best_f:
            self.best_f, self.best_x = value, x.copy()
        self.history.append(self.best_f)
        return value


def ncs_minimize(
    objective: Objective,
    lower: np.ndarray,
    upper: np.ndarray,
    config: NCSConfig = NCSConfig(),
    x0: np.ndarray | None = None,
    callback: Callback | None = None,
) -> NCSResult:
    """Minimise `objective` over the box [lower, upper] with NCS; never calls it more than the budget.

    Without `x0` the N processes start uniformly at random in the box (N evaluations). With `x0` they all
    start there, as OLMP does (§5), and x0 is evaluated once; its value seeds the best-so-far.
    """
    lower, upper = _validate_box(lower, upper)
    dim = lower.size
    n = config.population
    if n < 2:
        raise ConfigError(f"NCS needs a population of at least 2 (diversity is measured between processes), got {n}")
    epoch = config.epoch_length if config.epoch_length is not None else n
    budget = config.budget if config.budget is not None else 10000 * dim
    if epoch < 1 or budget < 1:
        raise ConfigError(f"NCS epoch_length and budget must be positive, got {epoch} and {budget}")
    if not 0.0 < config.r < 1.0:
        raise ConfigError(f"NCS r must lie in (0, 1), got {config.r}")
    width = upper - lower
    if config.bounds == "clip" and np.any(2.0 * config.clip_margin >= width):
        raise ConfigError(f"NCS clip_margin {config.clip_margin} leaves no room inside the box")
    if config.sigma_mode == "relative":
        sigma_init = width * (config.sigma0 if config.sigma0 is not None else 1.0 / n)
    elif config.sigma0 is not None:
        sigma_init = np.full(dim, float(config.sigma0))
    else:
        raise ConfigError("NCS sigma_mode 'absolute' needs an explicit sigma0")
    if np.any(sigma_init <= 0):
        raise ConfigError(f"NCS sigma0 must be positive, got {config.sigma0}")

    rng = np.random.default_rng(config.seed)
    evaluate = _BudgetedObjective(objective, budget)

    def into_box(x: np.ndarray) -> np.ndarray:
        if config.bounds == "reflect":
            return reflect_into_box(x, lower, upper)
        return np.clip(x, lower + config.clip_margin, upper - config.clip_margin)

    if x0 is None:
        if budget < n:
            raise ConfigError(f"NCS budget {budget} cannot evaluate the initial population of {n}")
        parents = lower + rng.random((n, dim)) * width
        parent_f = np.array([evaluate(x) for x in parents])
    else:
        start = np.asarray(x0, dtype=float).ravel()
        if start.shape != lower.shape:
            raise ConfigError(f"NCS x0 has {start.size} values, the bounds have {dim}")
        if np.any(start < lower) or np.any(start > upper):
            raise ConfigError("NCS x0 lies outside the search bounds")
        parents = np.tile(start, (n, 1))
        parent_f = np.full(n, evaluate(start))
    sigma = np.tile(sigma_init, (n, 1))
    successes = np.zeros(n, dtype=int)
    generations_planned = budget / n  # T_max/N in the λ schedule (§4 step 5)
    generation = 0
    replacements = 0

    while not evaluate.exhausted:
        # §4 step 1: one trial per process, all from this generation's parents (synchronous, as NCS-C).
        trials = into_box(parents + sigma * rng.standard_normal((n, dim)))
        n_trials = min(n, budget - evaluate.evaluations)
        # The last generation may be cut short by the budget; unevaluated trials are never accepted.
        trial_f = parent_f.copy()
        trial_f[:n_trials] = [evaluate(trials[i]) for i in range(n_trials)]
        best_f = evaluate.best_f

        spread = config.lambda_spread
        if config.lambda_schedule == "linear":
            spread = max(0.0, spread * (1.0 - generation / generations_planned))
        lambdas = rng.normal(config.lambda_, spread, size=n_trials) if spread > 0 else np.full(n_trials, config.lambda_)

        variances = sigma**2
        accepted = np.zeros(n, dtype=bool)
        for i in range(n_trials):
            others = np.arange(n) != i
            # §4 step 2: distance to the nearest other parent, for the parent and for its trial (same σ_i).
            other_means, other_vars = parents[others], variances[others]
            corr_parent = float(np.min(bhattacharyya_diag(parents[i], variances[i], other_means, other_vars)))
            corr_trial = float(np.min(bhattacharyya_diag(trials[i], variances[i], other_means, other_vars)))
            # §4 step 3: normalise against the best-so-far.
            gap_parent, gap_trial = parent_f[i] - best_f, trial_f[i] - best_f
            fit_norm = _safe_ratio(gap_trial, gap_parent + gap_trial)
            corr_norm = _safe_ratio(corr_trial, corr_parent + corr_trial)
            # §4 step 4 (+ §5 feasibility; the defect's extra sign test only when replicating it).
            accept = lambdas[i] * corr_norm > fit_norm
            if config.infeasible_value is not None:
                accept = accept and trial_f[i] < config.infeasible_value
            if config.replicate_released_defect:
                accept = accept and trial_f[i] < 0.0
            accepted[i] = accept
        parents[accepted] = trials[accepted]
        parent_f[accepted] = trial_f[accepted]
        successes += accepted
        replacements += int(accepted.sum())
        generation += 1

        if generation % epoch == 0:  # 1/5 success rule (§4)
            sigma = one_fifth_rule(sigma, successes, epoch, config.r)
            successes[:] = 0

        if callback is not None and callback(generation, evaluate.best_x.copy(), evaluate.best_f):
            break

    return NCSResult(
        best_x=evaluate.best_x.copy(),
        best_f=evaluate.best_f,
        evaluations=evaluate.evaluations,
        history=evaluate.history,
        generations=generation,
        replacements=replacements,
        final_sigma=sigma,
    )


def random_search_minimize(
    objective: Objective, lower: np.ndarray, upper: np.ndarray, budget: int, seed: int = 0
) -> NCSResult:
    """Baseline: `budget` points drawn uniformly in the box, best one returned."""
    lower, upper = _validate_box(lower, upper)
    if budget < 1:
        raise ConfigError(f"random search budget must be positive, got {budget}")
    rng = np.random.default_rng(seed)
    evaluate = _BudgetedObjective(objective, budget)
    while not evaluate.exhausted:
        evaluate(lower + rng.random(lower.size) * (upper - lower))
    return NCSResult(
        best_x=evaluate.best_x.copy(),
        best_f=evaluate.best_f,
        evaluations=evaluate.evaluations,
        history=evaluate.history,
    )
