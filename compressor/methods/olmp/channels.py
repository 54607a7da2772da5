"""OLMP on channel groups (`--method olmp --pattern channel`, issue 12): the search is over each
group's kept channel count instead of each layer's magnitude threshold, so its result is removed
from the graph and every runtime gets faster.

One NCS search (sparsity/channel_search.py) on the dense network, before any training: each
candidate prunes every group to its counts (the strongest channels by group norm), is checked
against the constraint OLMP always uses (the primary metric on fixed samples, at most
--max-accuracy-drop below the dense model's), and is scored by the objective: the parameters,
the multiply-adds, or the latency predicted on the run's runtime from a per-layer table
(runtimes/layer_latency.py; the measure stage times the result for real at the end). The masks
then stay fixed through `epochs + retrain_epochs` of fine-tuning. The per-step re-search of the
threshold variant has no counterpart: a removed channel does not come back.
"""

from __future__ import annotations

import torch

from ...onnx_import.tensors import torch_to_numpy
from ...runtimes.layer_latency import build_latency_table
from ...sparsity.channel_groups import attach, coupled_masks, kept_fractions
from ...sparsity.channel_search import search_keeps
from ...training import MaskSet
from ..base import MethodResult, PruneContext, ReportSection
from .constraint import ConstraintSet, constraint_for


def run_channel_search(method, ctx: PruneContext) -> MethodResult:
    cfg, session, module = method.config, ctx.session, ctx.module
    channels = ctx.plan.channels
    infos = module.weights
    sizes = channels.candidates
    constraint = constraint_for(session.objective, cfg.max_accuracy_drop, cfg.max_output_error)
    constraint_set = ConstraintSet.from_session(session, cfg.constraint_data, cfg.constraint_samples, session.config.seed)
    dense_value = constraint_set.measure(module)
    cost, unit, table = _cost(cfg.objective, ctx, channels, session)
    params = {n: module.parameter(n) for n in infos}

    def violation(keeps) -> float:
        masks = coupled_masks(params, channels.replan(keeps))
        saved = {n: params[n].detach().clone() for n in masks}
        try:
            with torch.no_grad():
                for n, mask in masks.items():
                    params[n].masked_fill_(~mask, 0.0)
            value = constraint_set.measure(module)
        finally:
            with torch.no_grad():
                for n, original in saved.items():
                    params[n].copy_(original)
        if constraint.feasible(value, dense_value):
            return 0.0
        return abs(value - dense_value) / max(constraint.bound, 1e-12)  # how many bounds away

    def search():
        outcome = search_keeps(sizes, cost, violation, objective=cfg.objective, round_to=channels.round_to,
                               budget=cfg.search_budget * cfg.search_calls, population=cfg.population,
                               seed=session.config.seed, log=ctx.log)
        return {"keeps": {str(k): v for k, v in outcome.keeps.items()}, "report": outcome.to_dict()}

    found = session.once("olmp_channels", search)  # a resumed run repeats nothing
    keeps = {int(k): v for k, v in found["keeps"].items()}
    final = channels.replan(keeps)
    final.search = {**found["report"], "unit": unit, "constraint": constraint.describe(dense_value),
                    "constraint_data": constraint_set.description,
                    **({"latency_table": table.to_dict()} if table is not None else {})}
    attach(ctx.plan, final, infos)
    masks = MaskSet({n: m for n, m in coupled_masks(params, final).items()})
    masks.apply(module)
    session.train("finetune", cfg.epochs + cfg.retrain_epochs, cfg.optimizer, masks=masks)
    ratio = found["report"]["cost_ratio"]
    ctx.log(f"olmp (channels, {cfg.objective}): {len(final.groups)} groups pruned, cost {ratio:.3f} of dense "
            f"({unit}) within {constraint.describe(dense_value)}")
    summary = {"objective": cfg.objective, "unit": unit, **final.search}
    section = ReportSection("olmp_channels", "Channel search (OLMP on channel groups)", summary,
                            markdown=lambda figures: _markdown(summary))
    return MethodResult(masks, sections=[section], notes=[
        f"OLMP on channel groups: one search before training; constraint {constraint.describe(dense_value)} on "
        f"{constraint_set.description}, checked with the channels pruned and no retraining."])


def _shrinkable(channels, infos) -> dict[str, tuple[bool, bool]]:
    """Each weight's (input side, output side): whether a candidate group can shrink it."""
    sides: dict[str, list] = {}
    for slices in channels.candidate_weights.values():
        for name, axis, _ in slices:
            entry = sides.setdefault(name, [False, False])
            if axis == infos[name].output_axis:
                entry[1] = True
            elif axis == infos[name].reduction_axis:
                entry[0] = True
    return {name: (entry[0], entry[1]) for name, entry in sides.items()}


def layer_fractions(channels, keeps) -> dict[str, float]:
    """Each layer's kept fraction of its entries (the product of its axes' kept shares) at `keeps`."""
    return kept_fractions(((size, keeps.get(gid, size), channels.candidate_weights[gid])
                           for gid, size in channels.candidates), channels.weight_shapes)


def _cost(objective: str, ctx: PruneContext, channels, session):
    infos = ctx.module.weights
    if objective == "latency":
        batch = next(iter(session.val_data))[0]
        inputs = batch if isinstance(batch, (list, tuple)) else [batch]
        feeds = {n: torch_to_numpy(t.unsqueeze(0)) for n, t in zip(ctx.module.input_names, inputs)}
        table = build_latency_table(ctx.source, channels.analysis, infos, ctx.runtime, _shrinkable(channels, infos),
                                    feeds, log=ctx.log)

        def predicted(keeps):
            return table.predict(layer_fractions(channels, keeps))

        return predicted, f"ms, predicted p50 on {table.runtime}", table
    per_layer = channels.layer_macs if objective == "flops" else {n: float(i.numel) for n, i in infos.items()}

    def counted(keeps):
        fractions = layer_fractions(channels, keeps)
        return sum(v * fractions.get(w, 1.0) for w, v in per_layer.items())

    return counted, ("multiply-adds per sample" if objective == "flops" else "parameters"), None


def _markdown(summary: dict) -> list[str]:
    lines = [f"- Objective: {summary['objective']} ({summary['unit']}): {summary['cost']:.4g} kept of "
             f"{summary['dense_cost']:.4g} dense ({summary['cost_ratio']:.1%})",
             f"- Constraint: {summary['constraint']} on {summary['constraint_data']}",
             f"- Search: {summary['evaluations']} evaluations, {summary['feasible_seen']} distinct candidates within the bound"]
    table = summary.get("latency_table")
    if table:
        lines.append(f"- Latency table on {table['runtime']}: dense model {table['dense_ms']:.3f} ms, of which "
                     f"{table['dense_ms'] - table['rest_ms']:.3f} ms in the {len(table['layers'])} prunable layers")
    return lines
