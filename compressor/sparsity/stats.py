"""Sparsity counts for the report and `compress inspect`: per layer, over the pruned set P, over
prunable weights, and over every stored floating-point tensor (slr.md §5.3: each total is labelled
with what it counts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

import torch

from ..onnx_import.weights import WeightInfo
from .patterns import NM


@dataclass(frozen=True)
class LayerRow:
    name: str  # the weight's ONNX tensor name
    node: str  # the node that consumes it (exporters often give weights opaque names)
    op: str
    shape: tuple[int, ...]
    params: int
    nonzero: int
    reduction_axis: int
    reduction_size: int
    groups: int
    nm_eligible: bool  # the 2:4 planner would prune it
    nm_reason: str | None  # why not, when it would not

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.params if self.params else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["sparsity"] = self.sparsity
        return d


def layer_rows(module) -> list[LayerRow]:
    """One row per prunable weight, in execution order."""
    two_four = NM(2, 4)  # the pattern sparse tensor cores run
    rows = []
    for name, info in module.weights.items():
        param = module.parameter(name)
        reason = two_four.eligible(info)
        rows.append(
            LayerRow(
                name=name,
                node=info.node,
                op=info.op_type,
                shape=tuple(param.shape),
                params=param.numel(),
                nonzero=int(torch.count_nonzero(param).item()),
                reduction_axis=info.reduction_axis,
                reduction_size=info.reduction_size,
                groups=info.groups,
                nm_eligible=reason is None,
                nm_reason=reason,
            )
        )
    return rows


def totals(module, rows: list[LayerRow]) -> dict:
    """Counts over prunable weights and over every floating-point tensor stored in the model."""
    stored = [t for t in module.onnx_parameters().values()] + [
        b for b in module.onnx_buffers().values() if b.is_floating_point()
    ]
    total = sum(t.numel() for t in stored)
    nonzero = sum(int(torch.count_nonzero(t).item()) for t in stored)
    prunable = sum(r.params for r in rows)
    prunable_nonzero = sum(r.nonzero for r in rows)
    return {
        "layers": len(rows),
        "prunable": prunable,
        "prunable_nonzero": prunable_nonzero,
        "prunable_sparsity": 1.0 - prunable_nonzero / prunable if prunable else 0.0,
        "nm_eligible_layers": sum(r.nm_eligible for r in rows),
        "total": total,
        "nonzero": nonzero,
    }


def _summary(numel: int, nonzero: int, tensors: int) -> dict:
    return {
        "tensors": tensors,
        "numel": numel,
        "nonzero": nonzero,
        "sparsity": 1.0 - nonzero / numel if numel else 0.0,
        # numel / nonzero: how many times fewer values a sparse format would store (None: all zero)
        "compression": numel / nonzero if nonzero else None,
    }


def sparsity_stats(module, pruned: Iterable[str] | None = None) -> dict:
    """Counts for an imported module (`OnnxModule`).

    layers: one row per prunable weight (name, node, op, shape, numel, nonzero, sparsity), in
        execution order;
    prunable: totals over every prunable weight; pruned: over the names in `pruned` (the set P),
        when given; stored: over every stored float tensor (parameters, biases, normalisation
        parameters and float buffers), i.e. the whole model.
    """
    rows = layer_rows(module)
    layers = [
        {
            "name": r.name,
            "node": r.node,
            "op": r.op,
            "shape": list(r.shape),
            "numel": r.params,
            "nonzero": r.nonzero,
            "sparsity": r.sparsity,
        }
        for r in rows
    ]
    whole = totals(module, rows)
    stored_tensors = len(module.onnx_parameters()) + sum(1 for b in module.onnx_buffers().values() if b.is_floating_point())
    result = {
        "layers": layers,
        "prunable": _summary(whole["prunable"], whole["prunable_nonzero"], len(rows)),
        "stored": _summary(whole["total"], whole["nonzero"], stored_tensors),
    }
    if pruned is not None:
        names = set(pruned)
        unknown = sorted(names - {r.name for r in rows})
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a prunable weight of this model")
        chosen = [r for r in rows if r.name in names]
        result["pruned"] = _summary(sum(r.params for r in chosen), sum(r.nonzero for r in chosen), len(chosen))
    return result


def check_nm(weight: torch.Tensor, info: WeightInfo, n: int, m: int) -> int:
    """How many blocks of `m` consecutive entries along the reduction axis hold more than `n` non-zeros.

    0 means the tensor satisfies N:M, e.g. for 2:4 every group of 4 holds at least 2 zeros.
    """
    axis = info.reduction_axis
    size = weight.shape[axis]
    if size % m:
        raise ValueError(f"{info.name!r}: reduction size {size} is not a multiple of {m}")
    blocks = weight.detach().movedim(axis, -1).reshape(-1, m)
    return int(((blocks != 0).sum(dim=1) > n).sum().item())
