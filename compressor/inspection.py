"""What a model offers to prune: one row per prunable weight, plus totals."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


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
    from .sparsity import NM  # imported here: sparsity.stats builds on this module

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


def inspect_module(module) -> dict:
    rows = layer_rows(module)
    tail = getattr(module, "tail", None)
    return {
        "layers": [r.to_dict() for r in rows],
        "totals": totals(module, rows),
        # post-processing kept as is in the file; training sees the module's outputs instead
        "tail": dict(tail.to_dict(), trained_outputs=list(module.output_names)) if tail else None,
    }


def tail_line(report: dict) -> str | None:
    """'tail kept as is: N nodes (OPS), trained on outputs A, B', or None without a tail."""
    tail = report.get("tail")
    if not tail:
        return None
    n = len(tail["nodes"])
    return (f"tail kept as is: {n} node{'s' if n != 1 else ''} ({', '.join(tail['ops'])}), "
            f"trained on outputs {', '.join(tail['trained_outputs'])}")
