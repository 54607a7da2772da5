"""Operator implementations. Each module registers its operators on import (see registry.py)."""

from . import (  # noqa: F401
    activation,
    arithmetic,
    cast,
    constant,
    conv,
    identity,
    linear,
    logic,
    normalization,
    pad,
    pooling,
    rearrange,
    reduction,
    resize,
    shape,
    tensor,
)
