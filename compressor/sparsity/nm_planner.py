"""The N:M planner (`--plan auto`): which layers TensorRT can run sparse, and which are worth pruning.

deploy.md §3 separates what the 2:4 layout allows from what gains: TensorRT marks a layer
"eligible for sparse math" when its weight fits the layout (reduction size a multiple of M, not
grouped or depthwise), then times sparse against dense tactics and keeps the faster one, which
for narrow or small layers is dense. So each weight is

- eligible: the pattern applies to it (`Pattern.eligible`);
- planned: eligible and wide and large enough to be expected to run sparse;
- skipped: with the reason, which the plan stage hands to `plan_layers` as keep_dense.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..errors import ConfigError
from ..onnx_import.weights import WeightInfo
from .base import Pattern
from .patterns import TRT_SPARSE_MIN_CHANNELS, layer_channels

# A 256-wide 1×1 conv (65,536 weights) is the smallest layer the channel rule lets through; 3×3 convs
# gain more than 1×1 because their effective reduction is C·9 (deploy.md §3), so the default
# keeps 256×256 3×3 convs and 512-wide 1×1 convs and skips the 256-wide 1×1 ones.
NM_PLAN_MIN_PARAMS = 262_144


@dataclass(frozen=True)
class NMPlanThresholds:
    """What a layer needs, beyond the pattern's own rules, to be planned (deploy.md §3)."""

    min_channels: int = TRT_SPARSE_MIN_CHANNELS  # input and output channels; sparse conv wins only at >= 256
    channel_multiple: int = 0  # input and output channels a multiple of this; the spec's "ideally 128"; 0: off
    min_params: int = NM_PLAN_MIN_PARAMS  # weight entries; smaller layers gain too little to be worth the accuracy

    def __post_init__(self):
        for name in ("min_channels", "channel_multiple", "min_params"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"--plan-{name.replace('_', '-')} must be an integer >= 0, got {value!r}")


@dataclass
class NMPlan:
    """The planner's decision for every prunable weight, in execution order."""

    pattern: str
    thresholds: NMPlanThresholds
    eligible: list[str] = field(default_factory=list)  # the layout allows it: TensorRT may consider it
    planned: list[str] = field(default_factory=list)  # eligible and expected to run sparse
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it stays dense

    def to_dict(self) -> dict:
        return {"pattern": self.pattern, "thresholds": vars(self.thresholds).copy(), "eligible": list(self.eligible),
                "planned": list(self.planned), "skipped": dict(self.skipped)}


def check_plannable(pattern: Pattern) -> None:
    if not pattern.sparse_kernels:  # the thresholds are TensorRT's rules for its N:M layout
        raise ConfigError(f"--plan auto plans N:M sparsity (e.g. --pattern 2:4), not pattern {str(pattern)!r}")


def plan_nm(infos: Mapping[str, WeightInfo], pattern: Pattern, thresholds: NMPlanThresholds = NMPlanThresholds()) -> NMPlan:
    """Decide eligible / planned / skipped for each weight of `infos` under an N:M `pattern`."""
    check_plannable(pattern)
    plan = NMPlan(str(pattern), thresholds)
    for name, info in infos.items():
        reason = pattern.eligible(info)
        if reason is not None:
            plan.skipped[name] = reason
            continue
        plan.eligible.append(name)
        reason = _gain_reason(info, thresholds)
        if reason is not None:
            plan.skipped[name] = reason
            continue
        plan.planned.append(name)
    return plan


def _gain_reason(info: WeightInfo, t: NMPlanThresholds) -> str | None:
    """Why an eligible layer is not expected to run sparse, or None."""
    c_in, c_out = layer_channels(info)
    if min(c_in, c_out) < t.min_channels:
        return f"narrow layer ({c_in} in, {c_out} out, below {t.min_channels}): TensorRT would run it dense"
    if t.channel_multiple and (c_in % t.channel_multiple or c_out % t.channel_multiple):
        return f"channels {c_in} in, {c_out} out are not multiples of {t.channel_multiple}"
    if info.numel < t.min_params:
        return f"small layer ({info.numel} weights, below {t.min_params}): too little to gain"
    return None
