"""Pruning methods. Each is a registered class whose typed Config owns its options; each returns
a typed MethodResult. All share the pipeline's data, tasks, sparsity patterns, masked training
and export. The built-in methods (magnitude, slr, admm, olmp) register themselves when the
registry is first used."""

from .base import (METHODS, Method, MethodResult, MetricsAfterPruning, PruneContext, ReportSection, get_method, option,
                   register_method)

__all__ = ["METHODS", "Method", "MethodResult", "MetricsAfterPruning", "PruneContext", "ReportSection", "get_method",
           "option", "register_method"]
