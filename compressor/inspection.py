"""`compress inspect`: what a model offers to prune (its layer rows and totals) and the tail it keeps."""

from __future__ import annotations

from .sparsity.stats import layer_rows, totals


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
