"""Versioned operator registry.

An implementation is registered for an (op_type, domain) together with the schema versions
("since_version" in the ONNX operator changelog) whose semantics it implements. A node is
supported exactly when the schema version that its model's opset selects is in that list, so
support is explicit: a new opset that changes an operator is refused until someone reads the
change and adds the version here. The implementations live in `OPERATORS`, a
`compressor.registry.Registry` keyed by (domain, op_type).

An implementation is a *builder*: called once per node at import time with a `NodeContext`
(attributes, constant inputs, schema version), it returns the function that runs the node on
tensors. Work that depends only on attributes and constants (parsing pads, reading a constant
shape) therefore happens once, not on every forward pass.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Iterable

import onnx.defs

from ..registry import Registry

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


def _load_ops() -> None:
    # The op modules register themselves on import. Found by name on the first lookup (plug-in
    # discovery): a static import would make the registry and the op modules import each other.
    importlib.import_module(".ops", __package__)


OPERATORS: Registry[OpImpl] = Registry("operator", loader=_load_ops)  # (domain, op_type) -> OpImpl


def register(op_type: str, versions: Iterable[int], domain: str = DEFAULT_DOMAIN):
    """Decorator: register `builder(ctx) -> fn(*inputs)` for the given schema versions."""

    def wrap(builder):
        key = (normalize_domain(domain), op_type)
        OPERATORS.register(key, OpImpl(op_type, key[0], tuple(sorted(versions)), builder))
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
    impl = OPERATORS.find((normalize_domain(domain), op_type))
    if impl is None:
        return None
    version = schema_version(op_type, domain, opset)
    if version is None or version not in impl.versions:
        return None
    return impl, version


def registered() -> dict[tuple[str, str], OpImpl]:
    """All registered implementations, keyed by (domain, op_type)."""
    return dict(OPERATORS.items())
