"""Derivative-free search used by optimisation-based pruning (OLMP's per-layer thresholds)."""

from .ncs import NCSConfig, NCSResult, ncs_minimize, one_fifth_rule, random_search_minimize

__all__ = ["NCSConfig", "NCSResult", "ncs_minimize", "one_fifth_rule", "random_search_minimize"]
