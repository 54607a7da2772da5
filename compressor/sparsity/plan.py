"""The layer plan: which prunable weights are pruned, at what target, and why the others are not.

The plan is decided once, from names and layer roles only, before any weight is touched, so a
report can show every skipped layer with its reason and a typo in a glob fails before training.

Defaults: when the user gives neither exclusions nor overrides, the first Conv and the last
classifier layer (the last Gemm/MatMul in execution order) stay dense, as is usual for these
small, sensitive layers. Any explicit choice replaces that default; `keep_ends_dense` forces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal, Mapping, Sequence

import torch

from ..errors import ConfigError
from ..onnx_import.weights import WeightInfo
from .base import Pattern
from .channel_groups import coupled_masks
from .global_magnitude import global_masks
from .registry import PATTERNS
from .selection import check_sparsity

Scope = Literal["layer", "global"]
LARGE_ENDS_SHARE = 0.25  # warn when the dense-by-default ends hold this share of the prunable weights


@dataclass
class LayerPlan:
    """Every prunable weight is in exactly one of `targets` and `skipped`, in execution order."""

    pattern: str  # canonical pattern spec
    sparsity: float  # the requested default target
    scope: str  # "layer" or "global"
    targets: dict[str, float] = field(default_factory=dict)  # name -> target sparsity (or the pattern's fixed one)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it stays dense
    notes: list[str] = field(default_factory=list)  # sentences for the report
    global_pool: list[str] = field(default_factory=list)  # pruned jointly at `sparsity` (global scope)
    channels: object = None  # coupled patterns: the ChannelPlan (channel_groups.py) the masks follow

    def to_dict(self) -> dict:
        return {
            "pattern": self.pattern,
            "sparsity": self.sparsity,
            "scope": self.scope,
            "targets": dict(self.targets),
            "skipped": dict(self.skipped),
            "notes": list(self.notes),
            "global_pool": list(self.global_pool),
            **({"channels": self.channels.to_dict()} if self.channels is not None else {}),
        }


def _matches(glob: str, info: WeightInfo) -> bool:
    return fnmatchcase(info.name, glob) or fnmatchcase(info.node, glob)


def _check_globs(globs, infos: dict[str, WeightInfo], option: str) -> None:
    example = next(iter(infos.values()))
    for glob in globs:
        if not any(_matches(glob, info) for info in infos.values()):
            raise ConfigError(
                f"{option} {glob!r} matches no prunable weight or node name "
                f"(names look like {example.name!r}, node {example.node!r}; see `compress inspect`)"
            )


def _ends(infos: dict[str, WeightInfo]) -> tuple[str | None, str | None]:
    """The first Conv and the last Gemm/MatMul, in execution order."""
    first = next((n for n, i in infos.items() if i.op_type == "Conv"), None)
    last = next((n for n, i in reversed(list(infos.items())) if i.op_type in ("Gemm", "MatMul")), None)
    return first, last


def plan_layers(
    infos: Mapping[str, WeightInfo],
    *,
    pattern: Pattern,
    sparsity: float,
    exclude: Sequence[str] = (),
    overrides: Mapping[str, float] | None = None,
    keep_ends_dense: bool | None = None,
    scope: Scope = "layer",
    keep_dense: Mapping[str, str] = {},
) -> LayerPlan:
    """Decide the target of every prunable weight (`infos` in execution order).

    exclude: globs on the ONNX tensor name or the consumer node name; matched layers stay dense.
    overrides: glob -> sparsity in [0, 1) (0 = dense); when several match, the later one wins;
        exclusion beats an override.
    keep_ends_dense: None = leave the first Conv and last classifier dense only when `exclude`
        and `overrides` are both empty; True/False force it (an override naming an end still
        applies to it). If the default would leave nothing to prune, the ends are pruned.
    scope: "layer" prunes each layer to its target; "global" ranks the default-target layers
        together (patterns with `global_scope`: unstructured), overridden layers keep their own target.
    keep_dense: weight name -> reason (from `find_fixed_weights` or a sensitivity pass); these
        stay dense whatever the pattern, scope or exclusions, and an --override naming one is
        not applied to it (a note says so): pruning fixed weights changes what the layer computes.
    """
    infos = dict(infos)
    keep_dense = dict(keep_dense)
    unknown = [n for n in keep_dense if n not in infos]
    if unknown:
        raise ConfigError(f"keep_dense names {unknown[0]!r}, which is not a prunable weight of this model")
    overrides = dict(overrides or {})
    exclude = list(exclude)
    if not infos:
        raise ConfigError("the model has no prunable weight (no Conv, ConvTranspose, Gemm or MatMul with a constant weight)")
    if scope not in ("layer", "global"):
        raise ConfigError(f"scope must be 'layer' or 'global', got {scope!r}")
    if scope == "global" and not pattern.global_scope:
        able = " or ".join(name for name, cls in PATTERNS.items() if cls.global_scope)
        raise ConfigError(f"scope 'global' ranks single weights across layers and needs the {able} pattern, not {str(pattern)!r}")
    fixed = pattern.fixed_sparsity
    p = check_sparsity(sparsity)
    for glob, value in overrides.items():
        try:
            overrides[glob] = check_sparsity(value)
        except ConfigError as exc:
            raise ConfigError(f"--override {glob!r}: {exc}") from None
        if fixed is not None and overrides[glob] not in (0.0, fixed):
            raise ConfigError(
                f"pattern {pattern} fixes each layer's sparsity at {fixed:g}; "
                f"--override {glob!r} can only be 0 (dense), got {overrides[glob]:g}"
            )
    _check_globs(exclude, infos, "--exclude")
    _check_globs(overrides, infos, "--override")

    default_ends = keep_ends_dense is None
    keep_ends = (not exclude and not overrides) if default_ends else bool(keep_ends_dense)
    plan = _assign(infos, pattern, p, exclude, overrides, keep_ends, default_ends, scope, keep_dense)
    notes = []
    if not plan.targets and keep_ends and default_ends:
        # only the ends could be pruned: applying the default would leave nothing to do
        keep_ends = False
        plan = _assign(infos, pattern, p, exclude, overrides, keep_ends, default_ends, scope, keep_dense)
        notes.append("Leaving the first conv and the last classifier layer dense (the default) would leave nothing "
                     "to prune, so they are pruned.")
    if not plan.targets and keep_dense and any(n in keep_dense for n in plan.skipped):
        # protection, not the user's choices, left nothing: the run goes on and says so
        notes.append(f"Nothing is pruned: every layer the options select must stay dense ({len(plan.skipped)} layers, "
                     "reasons in the layer table). Give data to train, lower the sparsity, or relax the protections.")
    elif not plan.targets:
        reasons = "; ".join(f"{n}: {r}" for n, r in list(plan.skipped.items())[:3])
        more = f" (and {len(plan.skipped) - 3} more)" if len(plan.skipped) > 3 else ""
        raise ConfigError(f"nothing to prune with pattern {pattern} at sparsity {p:g}: {reasons}{more}")
    plan.notes = _notes(plan, infos, pattern, p, keep_ends, default_ends, overrides) + notes
    plan.notes += _keep_dense_notes(infos, keep_dense, overrides)
    return plan


def _keep_dense_notes(infos, keep_dense, overrides) -> list[str]:
    if not keep_dense:
        return []
    notes = [f"{len(keep_dense)} layer(s) must stay dense (fixed weights, pruning them alone breaks an output, "
             "or --plan auto expects no gain): "
             + "; ".join(f"{n}: {r}" for n, r in list(keep_dense.items())[:3])
             + (f" (and {len(keep_dense) - 3} more)" if len(keep_dense) > 3 else "") + "."]
    for glob, value in overrides.items():
        hit = [n for n in keep_dense if value > 0 and _matches(glob, infos[n])]
        if hit:
            notes.append(f"--override {glob!r} -> {value:g} is not applied to {', '.join(hit)}: "
                         f"{'it stays' if len(hit) == 1 else 'they stay'} dense ({keep_dense[hit[0]]}).")
    return notes


def _assign(infos, pattern, p, exclude, overrides, keep_ends, default_ends, scope, keep_dense) -> LayerPlan:
    plan = LayerPlan(pattern=str(pattern), sparsity=p, scope=scope)
    first, last = _ends(infos) if keep_ends else (None, None)
    why_ends = "(default)" if default_ends else "(--keep-ends)"
    for name, info in infos.items():
        excluded_by = next((g for g in exclude if _matches(g, info)), None)
        override = next((g for g in reversed(list(overrides)) if _matches(g, info)), None)
        if name in keep_dense:  # before any user choice: pruning it breaks the model, not just hurts it
            plan.skipped[name] = keep_dense[name]
            continue
        if excluded_by is not None:
            plan.skipped[name] = f"excluded by --exclude {excluded_by!r}"
            continue
        if override is not None and overrides[override] == 0.0:
            plan.skipped[name] = f"override 0 ({override!r})"
            continue
        if override is None and name == first:
            plan.skipped[name] = f"first conv kept dense {why_ends}"
            continue
        if override is None and name == last:
            plan.skipped[name] = f"last classifier layer kept dense {why_ends}"
            continue
        reason = pattern.eligible(info)
        if reason is not None:
            plan.skipped[name] = reason
            continue
        if pattern.fixed_sparsity is not None:
            target = pattern.fixed_sparsity
        else:
            target = overrides[override] if override is not None else p
        if target == 0.0:
            plan.skipped[name] = "sparsity 0"
            continue
        plan.targets[name] = target
        if scope == "global" and override is None:
            plan.global_pool.append(name)
    return plan


def _notes(plan, infos, pattern, p, keep_ends, default_ends, overrides) -> list[str]:
    notes = []
    if keep_ends:
        first, last = _ends(infos)
        ends = [f"the first conv ({first})" if first in plan.skipped else None,
                f"the last classifier layer ({last})" if last in plan.skipped else None]
        ends = [e for e in ends if e]
        if ends:
            subject = " and ".join(ends)
            subject = subject[0].upper() + subject[1:]
            verb = "are" if len(ends) > 1 else "is"
            if default_ends:
                text = (f"{subject} {verb} left dense by default (usually small, sensitive layers); pass --prune-ends "
                        f"to prune them too (any --exclude or --override also turns this default off).")
            else:
                text = f"{subject} {verb} kept dense (--keep-ends)."
            # a large head (e.g. a lane-detection FC) can dominate the model: say so
            share = sum(infos[n].numel for n in (first, last) if n in plan.skipped) / sum(i.numel for i in infos.values())
            if share >= LARGE_ENDS_SHARE:
                holds = "They hold" if len(ends) > 1 else "It holds"
                text += f" {holds} {share:.0%} of the prunable weights, so the model's overall sparsity stays low."
            notes.append(text)
    notes += pattern.plan_notes([infos[n] for n in plan.targets], p)
    ineligible = [n for n, r in plan.skipped.items() if r == pattern.eligible(infos[n])]
    if ineligible:
        notes.append(f"{len(ineligible)} layer(s) stay dense because pattern {pattern} does not apply to them (reasons per layer).")
    if overrides:
        pruned = {g: v for g, v in overrides.items() if v > 0}
        if pruned:
            notes.append("Per-layer overrides: " + ", ".join(f"{g!r} -> {v:g}" for g, v in pruned.items()) + ".")
    if plan.global_pool:
        notes.append(
            f"Global scope: one magnitude threshold over {len(plan.global_pool)} layers prunes {p:g} of their weights "
            f"in total; each layer's own sparsity varies."
        )
    return notes


def compute_masks(
    weights: Mapping[str, torch.Tensor], infos: Mapping[str, WeightInfo], plan: LayerPlan, pattern: Pattern
) -> dict[str, torch.Tensor]:
    """Bool masks (True = kept) for every layer in `plan.targets`, in plan order."""
    if str(pattern) != plan.pattern:
        raise ValueError(f"the plan was made for pattern {plan.pattern!r}, not {str(pattern)!r}")
    missing = [n for n in plan.targets if n not in weights]
    if missing:
        raise ValueError(f"no weight given for planned layer {missing[0]!r}")
    masks: dict[str, torch.Tensor] = {}
    if pattern.coupled:
        if plan.channels is None:
            raise ValueError(f"pattern {pattern} prunes channel groups: the plan has no channel plan (plan stage)")
        masks = coupled_masks(weights, plan.channels, getattr(pattern, "importance", "l2"))
        return {n: masks.get(n, torch.ones_like(weights[n], dtype=torch.bool)) for n in plan.targets}
    if plan.global_pool and pattern.global_scope:
        masks.update(global_masks({n: weights[n] for n in plan.global_pool}, plan.sparsity))
    for name, target in plan.targets.items():
        if name not in masks:
            masks[name] = pattern.mask(weights[name], infos[name], target)
    return {n: masks[n] for n in plan.targets}


def apply_masks(params: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> None:
    """Zero every pruned entry in place (exact +0.0, even where a weight is NaN or inf)."""
    with torch.no_grad():
        for name, mask in masks.items():
            param = params[name]
            if tuple(param.shape) != tuple(mask.shape):
                raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, the tensor {tuple(param.shape)}")
            param.masked_fill_(~mask.to(param.device), 0.0)
