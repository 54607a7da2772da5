"""Versioned operator registry.

An implementation is registered for an (op_type, domain) together with the schema versions
("since_version" in the ONNX operator changelog) whose semantics it implements. A node is
supported exactly when the schema version that its model's opset selects is in that list, so
support is explicit: a new opset that changes an operator is refused until someone reads the
change and adds the version here.

An implementation is a *builder*: called once per node at import time with a `NodeContext`
(attributes, constant inputs, schema version), it returns the function that runs the node on
tensors. Work that depends only on attributes and constants (parsing pads, reading a constant
shape) therefore happens once, not on every forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import onnx.defs

DEFAULT_DOMAIN = ""
_DOMAIN_ALIASES = {"ai.onnx": DEFAULT_DOMAIN}


def normalize_domain(domain: str) -> str:
    return _DOMAIN_ALIASES.get(domain, domain)


@dataclass(frozen=True)
class OpImpl:
    op_type: str
    domain: str
    versions: tuple[int, ...]
    builder: Callable


_REGISTRY: dict[tuple[str, str], OpImpl] = {}


def register(op_type: str, versions: Iterable[int], domain: str = DEFAULT_DOMAIN):
    """Decorator: register `builder(ctx) -> fn(*inputs)` for the given schema versions."""

    def wrap(builder):
        key = (normalize_domain(domain), op_type)
        if key in _REGISTRY:
            raise RuntimeError(f"operator {op_type!r} (domain {domain!r}) registered twice")
        _REGISTRY[key] = OpImpl(op_type, key[0], tuple(sorted(versions)), builder)
        return builder

    return wrap


def schema_version(op_type: str, domain: str, opset: int) -> int | None:
    """The since_version of the schema that `opset` selects, or None if ONNX has no such op."""
    try:
        return onnx.defs.get_schema(op_type, opset, normalize_domain(domain)).since_version
    except onnx.defs.SchemaError:
        return None


def lookup(op_type: str, domain: str, opset: int) -> tuple[OpImpl, int] | None:
    """The implementation and schema version for a node, or None if unsupported."""
    _load_ops()
    impl = _REGISTRY.get((normalize_domain(domain), op_type))
    if impl is None:
        return None
    version = schema_version(op_type, domain, opset)
    if version is None or version not in impl.versions:
        return None
    return impl, version


def registered() -> dict[tuple[str, str], OpImpl]:
    """All registered implementations, keyed by (domain, op_type)."""
    _load_ops()
    return dict(_REGISTRY)


_loaded = False


def _load_ops() -> None:
    # The op modules register themselves on import; importing them here (not at module top)
    # keeps the registry importable from the op modules without a cycle.
    global _loaded
    if not _loaded:
        from . import ops  # noqa: F401

        _loaded = True
