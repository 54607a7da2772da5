"""OLMP (Li et al., IJCAI 2018): per-layer magnitude thresholds optimised by negatively correlated
search under an accuracy-loss bound, with recoverable masks. Spec: ../shared/specs/olmp.md.

- `constraint`: the accuracy (or fidelity) bound and the fixed samples it is measured on.
- `search`: layers, c-rates and thresholds, the surgery state, one NCS call over the c-rates.
- `method`: the registered method: start, pruning-and-adjusting phase, frozen-mask retraining.
"""

from .method import OLMP

__all__ = ["OLMP"]
