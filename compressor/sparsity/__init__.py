"""Sparsity patterns as projections, the layer plan, and sparsity counts.

- `base`: `Pattern`, what every pattern is: its capabilities and entry points.
- `patterns`: the built-in patterns (`Unstructured`, `NM`, `Filter`, `Channel`, `Column`):
  Euclidean projections onto a pattern, returning (projected, mask) with exact keep-counts.
- `registry`: `PATTERNS` (each pattern registers itself), `get_pattern(name, **options)`,
  `parse_pattern("2:4")` (the CLI grammar).
- `global_magnitude`: `global_masks`, one threshold across several tensors.
- `plan`: `plan_layers` -> `LayerPlan`, `compute_masks`, `apply_masks`.
- `stats`: `sparsity_stats(module)`, `layer_rows`/`totals` (what `compress inspect` lists), `check_nm`.
- `selection`: the exact counting and tie-breaking rules they all share.
- `hysteresis`: OLMP/DNS recoverable threshold masks (`MagnitudeStats`, `refresh_mask`).
"""

from .base import Pattern
from .global_magnitude import global_masks
from .hysteresis import MagnitudeStats, refresh_mask
from .patterns import NM, Channel, Column, Filter, Unstructured, layer_channels
from .plan import LayerPlan, apply_masks, compute_masks, plan_layers
from .registry import PATTERNS, get_pattern, parse_pattern
from .selection import align_count, keep_count, top_k_mask
from .stats import check_nm, sparsity_stats

__all__ = [
    "PATTERNS",
    "NM",
    "Channel",
    "Column",
    "Filter",
    "LayerPlan",
    "MagnitudeStats",
    "Pattern",
    "Unstructured",
    "align_count",
    "apply_masks",
    "check_nm",
    "compute_masks",
    "get_pattern",
    "global_masks",
    "keep_count",
    "layer_channels",
    "parse_pattern",
    "plan_layers",
    "refresh_mask",
    "sparsity_stats",
    "top_k_mask",
]
