"""Pruning methods. Each is a registered mode with a typed config; all share the pipeline's
data, objectives, sparsity patterns, masked training and export."""

from .base import METHODS, Method, PruneContext, get_method, register_method
from . import admm, magnitude, olmp, slr  # noqa: F401  (each registers itself)

__all__ = ["METHODS", "Method", "PruneContext", "get_method", "register_method"]
