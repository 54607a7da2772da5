"""Coupled channel pruning: the `channel` pattern prunes whole channel groups (compressor/structure),
so that the exporter can remove them from the graph and every runtime gets faster.

A group's channels are ranked by the L2 norm (or L1) of everything that holds them: the producer
filters, and every consumer's input slices. The weakest are masked out everywhere at once, in the
producers' rows *and* the consumers' columns: a removed channel may still carry a constant (a
BatchNormalization shift), but nothing reads it any more, so the masked model computes exactly
what the slim one will. Kept counts are rounded to a multiple of `round_to` (hardware-friendly
channel counts). A group is pruned at the target of its producer layers (the smallest, when a
residual group has several); one whose producer is excluded or kept dense stays whole.

`--target-flops F` picks the one channel sparsity at which the network keeps a fraction F of its
multiply-adds (both sides of a layer shrink, so F = 0.5 needs about 29% of channels removed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch

from ..errors import ConfigError
from ..onnx_import.weights import WeightInfo
from .selection import align_count, keep_count, top_k_mask

WeightSlices = tuple[str, int, tuple[tuple[int, ...], ...]]  # (weight, axis, indices of each channel)


@dataclass(frozen=True)
class ChannelGroupTarget:
    """One prunable channel group as the methods see it."""

    id: int
    size: int
    keep: int  # channels kept (rounded)
    sparsity: float  # the target it was planned at
    weights: tuple[WeightSlices, ...]  # the prunable weights holding the channels (both sides)
    producers: tuple[str, ...]  # weights whose output axis holds the channels
    label: str  # for reports: the producers' nodes

    def to_dict(self) -> dict:
        return {"id": self.id, "channels": self.size, "kept": self.keep, "sparsity": self.sparsity,
                "producers": list(self.producers), "weights": [f"{w}[{a}]" for w, a, _ in self.weights],
                "label": self.label}


@dataclass
class ChannelPlan:
    groups: list[ChannelGroupTarget] = field(default_factory=list)
    kept_whole: dict[int, str] = field(default_factory=dict)  # group id -> why it is not pruned
    blocked: dict[int, list[str]] = field(default_factory=dict)  # group id -> the analysis' reasons
    macs: dict[str, float] = field(default_factory=dict)  # "dense", "kept" (per sample)
    candidates: list[tuple[int, int]] = field(default_factory=list)  # (group id, channels) the plan may prune
    candidate_weights: dict[int, tuple] = field(default_factory=dict)  # group id -> its WeightSlices
    layer_macs: dict[str, float] = field(default_factory=dict)  # each prunable layer's multiply-adds, dense
    weight_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # every prunable weight's shape
    round_to: int = 8  # kept counts are multiples of this
    search: dict | None = None  # a method's channel search: what it found (report "plan.channels.search")
    analysis: object = field(default=None, repr=False)  # the graph's ChannelAnalysis the plan was made from
    replan: object = field(default=None, repr=False)  # keeps -> the ChannelPlan with those counts (same layer plan)

    def to_dict(self) -> dict:
        return {"groups": [g.to_dict() for g in self.groups], "kept_whole": {str(k): v for k, v in self.kept_whole.items()},
                "blocked": {str(k): v for k, v in self.blocked.items()}, "macs": dict(self.macs),
                "round_to": self.round_to,
                **({"search": self.search} if self.search is not None else {})}

    def weight_sparsity(self, infos: Mapping[str, WeightInfo]) -> dict[str, float]:
        """The fraction of each touched weight's entries the plan removes (both axes)."""
        kept = kept_fractions(((g.size, g.keep, g.weights) for g in self.groups), _shapes(infos))
        return {name: 1.0 - kept[name] for name in infos if name in kept}


def plan_channels(analysis, infos: Mapping[str, WeightInfo], targets: Mapping[str, float], skipped: Mapping[str, str],
                  *, round_to: int = 8, target_flops: float | None = None, keeps: Mapping[int, int] | None = None
                  ) -> ChannelPlan:
    """The channel groups of `analysis` (compressor.structure) that the layer plan lets us prune.

    `targets`/`skipped`: the layer plan's per-weight targets and dense reasons, read for the
    producers; `target_flops` (a fraction of multiply-adds to keep) replaces the targets with the
    one sparsity that reaches it; `keeps` (group id -> channels kept, from a search) replaces both."""
    if round_to < 1:
        raise ConfigError(f"--round-to must be 1 or more, got {round_to}")
    plan = ChannelPlan()
    candidates: list[tuple[int, int, tuple[WeightSlices, ...], tuple[str, ...], float | None]] = []
    for group in analysis.groups:
        slices = tuple((name, axis, tuple(idx)) for (name, axis), idx in group.positions.items() if name in infos)
        producers = tuple(name for name, axis, _ in slices if axis == infos[name].output_axis)
        if not group.prunable:
            plan.blocked[group.id] = list(group.blocked)
            continue
        if not producers:
            plan.kept_whole[group.id] = "no prunable layer produces these channels"
            continue
        dense = [f"{p}: {skipped[p]}" for p in producers if p in skipped or p not in targets]
        if dense:
            plan.kept_whole[group.id] = "its producer stays dense (" + "; ".join(d for d in dense) + ")"
            continue
        candidates.append((group.id, group.size, slices, producers, min(targets[p] for p in producers)))
    macs = _layer_macs(analysis, infos)
    shapes = _shapes(infos)

    def build(sparsity_of) -> list[ChannelGroupTarget]:
        built = []
        for gid, size, slices, producers, target in candidates:
            p = sparsity_of(target)
            keep = align_count(keep_count(size, p), size, round_to)
            nodes = sorted({infos[n].node for n in producers})
            built.append(ChannelGroupTarget(gid, size, keep, p, slices, producers, ", ".join(nodes[:3])))
        return built

    if keeps is not None:
        plan.groups = [ChannelGroupTarget(g.id, g.size, keeps.get(g.id, g.size), 1.0 - keeps.get(g.id, g.size) / g.size,
                                          g.weights, g.producers, g.label) for g in build(lambda t: 0.0)]
        plan.groups = [g for g in plan.groups if g.keep < g.size]
    elif target_flops is None:
        plan.groups = [g for g in build(lambda t: t) if g.keep < g.size]
    else:
        plan.groups = [g for g in _reach_flops(build, macs, shapes, target_flops, round_to) if g.keep < g.size]
    for gid, *_ in candidates:
        if gid not in {g.id for g in plan.groups} and gid not in plan.kept_whole:
            plan.kept_whole[gid] = ("the search keeps every channel" if keeps is not None
                                    else f"rounding to a multiple of {round_to} keeps every channel")
    plan.macs = {"dense": float(sum(macs.values())), "kept": _kept_macs(plan.groups, macs, shapes)}
    plan.candidates = [(gid, size) for gid, size, *_ in candidates]
    plan.candidate_weights = {gid: slices for gid, _, slices, _, _ in candidates}
    plan.analysis = analysis
    plan.round_to = round_to
    targets, skipped = dict(targets), dict(skipped)
    plan.replan = lambda counts: plan_channels(analysis, infos, targets, skipped, round_to=round_to, keeps=counts)
    plan.layer_macs = macs
    plan.weight_shapes = shapes
    return plan


def _shapes(infos: Mapping[str, WeightInfo]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(info.shape) for name, info in infos.items()}


def _layer_macs(analysis, infos: Mapping[str, WeightInfo]) -> dict[str, float]:
    """Multiply-adds per sample of each prunable weight's layer, from the analysed shapes."""
    graph = analysis.graph
    macs = {}
    for name, info in infos.items():
        node = graph.by_label.get(info.node)
        shape = graph.shapes.get(node.output[0]) if node is not None else None
        if not shape:
            continue
        per_sample = 1
        for d in shape[1:]:
            per_sample *= d
        macs[name] = float(per_sample * (info.numel // max(info.shape[info.output_axis], 1)))
    return macs


def kept_fractions(groups: Iterable[tuple[int, int, Sequence[WeightSlices]]],
                   shapes: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Each weight the groups touch: the fraction of its entries kept. `groups`: (channels, kept,
    weight slices) each. Groups on the same axis of a weight (the consumer of a concatenation reads
    several) each remove their share of that axis; the kept fractions of its axes multiply."""
    removed: dict[tuple[str, int], int] = {}
    for size, keep, weights in groups:
        for name, axis, channels in weights:
            per_channel = len(channels[0]) if channels else 1  # a channel flattened into its spatial block
            removed[(name, axis)] = removed.get((name, axis), 0) + (size - keep) * per_channel
    kept: dict[str, float] = {}
    for (name, axis), count in removed.items():
        kept[name] = kept.get(name, 1.0) * (1.0 - count / shapes[name][axis])
    return kept


def _kept_macs(groups: list[ChannelGroupTarget], macs: Mapping[str, float], shapes) -> float:
    kept = kept_fractions(((g.size, g.keep, g.weights) for g in groups), shapes)
    return float(sum(m * kept.get(name, 1.0) for name, m in macs.items()))


def _reach_flops(build, macs, shapes, target_flops: float, round_to: int = 1) -> list[ChannelGroupTarget]:
    """The groups whose kept multiply-adds come closest to the target fraction: first the largest
    uniform sparsity that keeps at least the target (bisection: kept multiply-adds fall as the
    sparsity grows, in steps from rounding); then, since rounding narrow groups overshoots, one
    block of `round_to` channels at a time from the group that keeps the largest share of its
    channels, until the target is reached (the closer of the last two states wins)."""
    if not 0.0 < target_flops <= 1.0:
        raise ConfigError(f"--target-flops must be in (0, 1], got {target_flops}")
    total = sum(macs.values())
    if total <= 0:
        raise ConfigError("--target-flops: the multiply-adds of the layers could not be counted")
    low, high = 0.0, 0.99
    best = build(lambda t: 0.0)
    for _ in range(30):
        mid = (low + high) / 2
        groups = build(lambda t, p=mid: p)
        if _kept_macs(groups, macs, shapes) >= target_flops * total:
            low, best = mid, groups
        else:
            high = mid
    return _fill(best, macs, shapes, target_flops * total, round_to)


def _fill(groups: list[ChannelGroupTarget], macs, shapes, goal: float, round_to: int) -> list[ChannelGroupTarget]:
    step = max(round_to, 1)
    groups = list(groups)
    kept = _kept_macs(groups, macs, shapes)
    while kept > goal:
        movable = [i for i, g in enumerate(groups) if g.keep - step >= step]
        if not movable:
            break
        i = max(movable, key=lambda k: (groups[k].keep / groups[k].size, groups[k].size))
        trial = list(groups)
        g = groups[i]
        trial[i] = replace(g, keep=g.keep - step, sparsity=1.0 - (g.keep - step) / g.size)
        after = _kept_macs(trial, macs, shapes)
        if after < goal and goal - after > kept - goal:
            break  # one more block would land further from the target than we are
        groups, kept = trial, after
    return groups


def coupled_masks(weights: Mapping[str, torch.Tensor], plan: ChannelPlan, importance: str = "l2") -> dict[str, torch.Tensor]:
    """Bool masks (True = kept) of every weight the plan's groups touch: per group, the `keep`
    strongest channels by the summed norm of all their slices; the rest masked on every axis."""
    masks: dict[str, torch.Tensor] = {}
    for group in plan.groups:
        scores = torch.zeros(group.size, dtype=torch.float64)
        present = [(n, a, idx) for n, a, idx in group.weights if n in weights]
        for name, axis, indices in present:
            # a NaN entry counts as nothing: its channel ranks weak rather than strong
            w = weights[name].detach().to(torch.float64).nan_to_num(0.0).movedim(axis, 0)
            rows = w.reshape(w.shape[0], -1)
            per_index = (rows ** 2 if importance == "l2" else rows.abs()).sum(1)
            for c, idx in enumerate(indices):
                scores[c] += per_index[list(idx)].sum()
        kept = top_k_mask(scores, group.keep)
        removed = [c for c in range(group.size) if not kept[c]]
        for name, axis, indices in present:
            mask = masks.setdefault(name, torch.ones_like(weights[name], dtype=torch.bool))
            drop = [i for c in removed for i in indices[c]]
            if drop:
                index = [slice(None)] * mask.dim()
                index[axis] = drop
                mask[tuple(index)] = False
    return masks


def attach(layer_plan, channels: ChannelPlan, infos: Mapping[str, WeightInfo]) -> None:
    """Make `layer_plan` the channel plan's: its targets become every weight a pruned group touches
    (at the fraction of entries removed), every other weight is skipped with the group's reason."""
    removed = channels.weight_sparsity(infos)
    why: dict[str, str] = {}
    for gid, reason in channels.kept_whole.items():
        why.setdefault(str(gid), reason)
    previous = dict(layer_plan.targets)
    layer_plan.targets = {name: removed[name] for name in infos if name in removed}
    for name in previous:
        if name not in layer_plan.targets:
            layer_plan.skipped[name] = "its channel groups are not pruned (see the channel plan)"
    for name in list(layer_plan.skipped):
        if name in layer_plan.targets:
            del layer_plan.skipped[name]  # a dense layer still loses the input slices of pruned channels
    layer_plan.channels = channels
