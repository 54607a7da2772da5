"""Stage `plan`: which weights are pruned, to what sparsity, and which must not be pruned.

1. weights that are not learned (constant, arange-like, exact integer kernels) stay dense;
2. the sensitivity pass prunes each planned layer alone on calibration samples and keeps dense
   those whose pruning alone breaks an output channel group;
3. when nothing trains afterwards (one-shot), the layers that add most to the predicted joint
   error are kept dense until it fits the error budget.
A one-shot prune cannot recover what it breaks; training after pruning recovers most of a
layer's solo damage, so by default ("auto") a run that trains only reports the pass.
"""

from __future__ import annotations

import itertools

from ..data import example_batch, stack_inputs
from ..errors import ConfigError
from ..onnx_import.tensors import torch_to_numpy
from ..runtimes import get_runtime
from ..sensitivity import layer_sensitivity
from ..sparsity import parse_pattern, plan_layers
from ..sparsity.channel_groups import attach as attach_channel_plan
from ..sparsity.channel_groups import plan_channels
from ..sparsity.fixed_weights import find_fixed_weights
from ..sparsity.nm_planner import plan_nm
from ..structure import analyze_channels
from .state import Planned, RunState
from .stages import register_stage

DEFAULT_SPARSITY = 0.5
ONE_SHOT_ERROR_BUDGET = 0.1  # joint relative error the protected layers keep a one-shot prune within


@register_stage("plan")
def plan(state: RunState) -> Planned:
    return state.timed("plan_s", lambda: _plan(state))


def _plan(state: RunState) -> Planned:
    opts, module, method = state.options.plan, state.loaded.module, state.loaded.method
    pattern = parse_pattern(opts.pattern)
    keep_ends = opts.keep_ends_dense
    if method.finds_own_sparsity:
        if opts.sparsity is not None or opts.overrides:
            raise ConfigError(f"method {method.name!r} finds every layer's sparsity itself: drop --sparsity/--override")
        keep_ends = False if keep_ends is None else keep_ends  # the paper prunes every layer
    task = state.prepared.task
    if keep_ends is None and not task.ends_dense_by_default:
        keep_ends = False
        state.notes.append(f"Task {task.name}: the first and last layers are pruned like the others ({task.ends_reason}).")
    target = opts.sparsity if opts.sparsity is not None else DEFAULT_SPARSITY
    # --plan auto: the layers not expected to run sparse stay dense like protected ones, with the planner's reason
    nm_plan = plan_nm(module.weights, pattern, opts.thresholds()) if opts.plan == "auto" else None
    not_worth = nm_plan.skipped if nm_plan is not None else {}

    analysis = _channel_analysis(state) if pattern.coupled else None
    round_to = _round_to(state) if pattern.coupled else 1

    def make_plan(keep_dense):
        layer_plan = plan_layers(module.weights, pattern=pattern, sparsity=target, exclude=opts.exclude,
                                 overrides=opts.overrides, keep_ends_dense=keep_ends, scope=opts.scope,
                                 keep_dense={**not_worth, **keep_dense})
        if analysis is not None:  # the coupled channel groups the layer plan lets us prune
            channels = plan_channels(analysis, module.weights, layer_plan.targets, layer_plan.skipped,
                                     round_to=round_to, target_flops=opts.target_flops)
            attach_channel_plan(layer_plan, channels, module.weights)
        return layer_plan

    fixed = find_fixed_weights(module) if opts.keep_fixed else {}
    layer_plan, protection = _protect(state, make_plan, fixed, pattern)
    state.notes.extend(layer_plan.notes)
    if nm_plan is not None:
        state.notes.append(f"--plan auto: {len(nm_plan.planned)} of {len(nm_plan.eligible)} layers eligible for {pattern} "
                           f"(of {len(module.weights)} prunable) are expected to run sparse on TensorRT; "
                           f"{len(layer_plan.targets)} are pruned.")
    return Planned(layer_plan, pattern, None if method.finds_own_sparsity else target, protection,
                   nm_plan.to_dict() if nm_plan is not None else None)


def _round_to(state: RunState) -> int:
    """--round-to, with "auto" resolved to the channel block of the runtime the run measures on."""
    asked = state.options.plan.round_to
    if asked != "auto":
        return asked
    measure = state.options.measure
    multiple, why = get_runtime(measure.runtime, options=measure.runtime_options).channel_multiple()
    state.notes.append(f"--round-to auto: kept channel counts are multiples of {multiple} ({why}).")
    state.log(f"--round-to auto: {multiple} ({why})")
    return multiple


def _channel_analysis(state: RunState):
    """The coupled channel groups of the model (compressor/structure), its shapes read from one run
    on a validation sample at the batch the model takes."""
    loaded = state.loaded
    batch = loaded.batch_info.native if loaded.batch_info.runs_own_batch_only else 1
    sample = example_batch(state.prepared.val_data, batch)
    feeds = {name: torch_to_numpy(t) for name, t in zip(loaded.module.input_names, sample)}
    analysis = state.timed("channel_analysis_s", lambda: analyze_channels(loaded.module.onnx_model, feeds))
    state.log(f"channel analysis: {len(analysis.prunable())} of {len(analysis.groups)} channel groups can be pruned")
    return analysis


def _protect(state: RunState, make_plan, fixed: dict, pattern):
    """The plan with the layers that must stay dense left out, and how they were found."""
    opts, prepared, loaded = state.options.plan, state.prepared, state.loaded
    module, method = loaded.module, loaded.method
    layer_plan = make_plan(fixed)
    trains = method.requires_data()
    enforce = opts.sensitivity == "on" or (opts.sensitivity == "auto" and not trains)
    budget = opts.error_budget if opts.error_budget is not None else (None if trains else ONE_SHOT_ERROR_BUDGET)
    protection = {"fixed": fixed, "sensitivity": None, "enforced": enforce, "budget": None, "budget_kept": {}}
    if opts.sensitivity == "off" or method.finds_own_sparsity or not layer_plan.targets:
        return layer_plan, protection

    # calibration: validation samples, then training samples (a one-shot run has no other use for them)
    pool = [prepared.val_data] + ([prepared.train_data] if prepared.train_data is not None else [])
    count = min(opts.sensitivity_samples, sum(len(d) for d in pool))
    samples = list(itertools.islice((d[i][0] for d in pool for i in range(len(d))), count))
    size = loaded.batch_size
    batches = [stack_inputs(samples[k:k + size]) for k in range(0, len(samples), size)]
    result = layer_sensitivity(module, layer_plan, pattern, batches, max_relative_l2=opts.sensitivity_threshold,
                               output_names=module.output_names)
    if not enforce:
        protection.update(sensitivity=result.to_dict())
        if result.keep_dense():
            state.notes.append(f"Sensitivity (reported only, training follows): {len(result.keep_dense())} layer(s) break an "
                               "output when pruned alone before training; --sensitivity on keeps them dense.")
        return layer_plan, protection
    kept = dict(result.keep_dense())
    budget_kept = result.within_budget(budget) if budget else {}
    protection.update(sensitivity=result.to_dict(), budget=budget, budget_kept=budget_kept)
    if kept or budget_kept:
        layer_plan = make_plan({**fixed, **kept, **budget_kept})
        state.log(f"sensitivity: {len(kept)} layer(s) break an output when pruned alone"
                  + (f", {len(budget_kept)} more kept dense for the error budget {budget:g}" if budget_kept else "")
                  + f" ({result.seconds:.1f} s)")
    return layer_plan, protection
