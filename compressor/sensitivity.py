"""Per-layer sensitivity: prune one layer alone, see which output it breaks.

For each planned layer the pass applies that layer's planned mask (the plan's own pattern and
target, via `compute_masks`), runs the calibration batches once, compares every float output
with the dense model per output channel (see objectives/fidelity.py), and restores the weight
bit for bit. A layer whose pruning alone pushes any output channel's relative L2 error above
`max_relative_l2` is returned as keep-dense with the output and channels it breaks, e.g.
"pruning it alone: output0 channels 2-3 rel. error 0.97".

Why per channel: a YOLO head's box width and height are 2 of 4+C channels of one output;
their collapse barely moves the whole-output cosine. Why 0.5: one layer out of tens that
alone leaves an error half the size of the signal cannot be recovered by the others (fine-
tuning recovers a few percent, not a lost channel); learned layers stay well below it: in a
YOLOv8n at 50% or 2:4 every learned conv alone stays under 0.3, the DFL decoding conv reaches 0.9.
Layers that are each harmless can still add up: `within_budget` keeps the largest contributors
dense until the predicted joint error fits a budget.
No cosine bound by default: the relative error is at least the sine of the angle between
output and reference, so any cosine bound up to 0.866 is already implied by 0.5.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch

from .objectives.fidelity import CHANNEL_NORM_FLOOR, OutputStats, float_pairs
from .sparsity.base import Pattern
from .sparsity.plan import LayerPlan, compute_masks

DEFAULT_MAX_RELATIVE_L2 = 0.5


@dataclass
class LayerSensitivity:
    """What pruning one layer alone does to the outputs (its worst output and channel group)."""

    name: str
    target: float  # the planned sparsity applied
    output: str | None  # the output it hurts most (None: the model has no float output)
    group: str  # "channels 2-3", or "" for an output measured as one group
    relative_l2: float  # that group's relative L2 error (the worst over all outputs and groups)
    cosine: float  # that group's cosine similarity
    output_relative_l2: float  # the whole output's relative L2 error
    output_cosine: float  # the whole output's cosine
    keep_dense: bool
    reason: str | None  # the report sentence when keep_dense
    group_errors: dict[str, list[float]] = field(default_factory=dict)  # output -> relative L2 per channel group

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SensitivityResult:
    layers: list[LayerSensitivity] = field(default_factory=list)  # in plan order
    max_relative_l2: float = DEFAULT_MAX_RELATIVE_L2
    min_cosine: float | None = None
    samples: int = 0
    seconds: float = 0.0

    def keep_dense(self) -> dict[str, str]:
        """name -> reason for the layers to keep dense: pass to `plan_layers(keep_dense=...)`."""
        return {layer.name: layer.reason for layer in self.layers if layer.keep_dense}

    def within_budget(self, budget: float) -> dict[str, str]:
        """Layers to keep dense, beyond the flagged ones, so the pruned rest stay within `budget` together.

        Each layer's solo errors are added in quadrature per output channel group (independent
        errors); while some group's predicted error exceeds `budget`, the layer contributing most
        to it is kept dense. A prediction, not a measurement: correlated layers can add up more.
        """
        pruned = [layer for layer in self.layers if not layer.keep_dense]
        kept: dict[str, str] = {}

        def worst_group():
            totals = {}
            for layer in pruned:
                for out, errors in layer.group_errors.items():
                    for c, e in enumerate(errors):
                        totals[out, c] = totals.get((out, c), 0.0) + e * e
            return max(totals.items(), key=lambda kv: kv[1], default=(None, 0.0))

        (group, total) = worst_group()
        while pruned and total ** 0.5 > budget:
            out, c = group
            layer = max(pruned, key=lambda la: la.group_errors.get(out, [0.0] * (c + 1))[c])
            channel = f" channel {c}" if len(layer.group_errors[out]) > 1 else ""
            kept[layer.name] = (f"pruned with the other layers: {out}{channel} predicted rel. error {total ** 0.5:.2f} "
                                f"over the budget {budget:g}; this layer alone {layer.group_errors[out][c]:.2f}")
            pruned.remove(layer)
            group, total = worst_group()
        return kept

    def to_dict(self) -> dict:
        return {
            "max_relative_l2": self.max_relative_l2,
            "min_cosine": self.min_cosine,
            "samples": self.samples,
            "seconds": self.seconds,
            "flagged": list(self.keep_dense()),
            "layers": [layer.to_dict() for layer in self.layers],
        }


def _as_args(batch) -> tuple:
    return tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)


def _batch_size(batches) -> int:
    return sum(int(_as_args(b)[0].shape[0]) for b in batches)


def layer_sensitivity(
    module: torch.nn.Module,
    plan: LayerPlan,
    pattern: Pattern,
    inputs: Sequence,
    *,
    max_relative_l2: float = DEFAULT_MAX_RELATIVE_L2,
    min_cosine: float | None = None,
    floor: float = CHANNEL_NORM_FLOOR,
    output_names: Sequence[str] | None = None,
) -> SensitivityResult:
    """Prune each layer of `plan.targets` alone and measure every float output per channel group.

    module: an imported `OnnxModule` (its `weights` and `parameter(name)` are used), dense.
    inputs: calibration batches, each a tensor or a tuple of the model's inputs (a small batch
        of validation data or random inputs: the pass runs one forward per batch per layer).
    max_relative_l2 / min_cosine: a layer is kept dense when any output channel group's relative
        L2 error exceeds the first, or its cosine falls below the second (None: not used).
    The module is left exactly as it was (weights restored, train/eval mode restored).
    """
    if not inputs:
        raise ValueError("layer_sensitivity needs at least one calibration batch")
    started = time.perf_counter()
    names = list(output_names or getattr(module, "output_names", []) or [])
    weights = {n: module.parameter(n) for n in plan.targets}
    masks = compute_masks(weights, module.weights, plan, pattern)
    was_training = module.training
    module.eval()
    result = SensitivityResult(max_relative_l2=max_relative_l2, min_cosine=min_cosine, samples=_batch_size(inputs))
    try:
        with torch.no_grad():
            dense = [module(*_as_args(b)) for b in inputs]
            for name, mask in masks.items():
                param = weights[name]
                saved = param.detach().clone()
                try:
                    param.masked_fill_(~mask.to(param.device), 0.0)
                    stats: dict[int, OutputStats] = {}
                    for batch, reference in zip(inputs, dense):
                        for i, s, t in float_pairs(module(*_as_args(batch)), reference):
                            label = names[i] if i < len(names) else f"output{i}"
                            stats.setdefault(i, OutputStats(label)).add(s, t)
                finally:
                    param.copy_(saved)  # exact restore, even if a forward failed
                result.layers.append(_judge(name, plan.targets[name], [stats[i].summary(floor) for i in sorted(stats)],
                                            max_relative_l2, min_cosine))
    finally:
        module.train(was_training)
    result.seconds = time.perf_counter() - started
    return result


def _judge(name, target, outputs, max_relative_l2, min_cosine) -> LayerSensitivity:
    if not outputs:
        return LayerSensitivity(name, target, None, "", 0.0, 1.0, 0.0, 1.0, False, None, {})
    # the worst group over all outputs, by relative error
    out, channel = max(((o, c) for o in outputs for c in range(len(o.channel_relative_l2))),
                       key=lambda oc: oc[0].channel_relative_l2[oc[1]])
    rel, cos = out.channel_relative_l2[channel], out.channel_cosine[channel]
    failing = out.channels_above(max_relative_l2)
    broken_cos = [] if min_cosine is None else [(o, c) for o in outputs for c, v in enumerate(o.channel_cosine) if v < min_cosine]
    group = out.group_label(failing or ([channel] if out.channel_axis is not None else None))
    keep, reason = False, None
    where = f"{out.name} {group}".strip()
    if failing:
        keep, reason = True, f"pruning it alone: {where} rel. error {rel:.2f}"
    elif broken_cos:
        o, c = min(broken_cos, key=lambda oc: oc[0].channel_cosine[oc[1]])
        out, channel, rel, cos = o, c, o.channel_relative_l2[c], o.channel_cosine[c]
        group = out.group_label([c] if out.channel_axis is not None else None)
        keep, reason = True, f"pruning it alone: {f'{out.name} {group}'.strip()} cosine {cos:.2f}"
    groups = {o.name: list(o.channel_relative_l2) for o in outputs}
    return LayerSensitivity(name, target, out.name, group, rel, cos, out.relative_l2, out.cosine, keep, reason, groups)
