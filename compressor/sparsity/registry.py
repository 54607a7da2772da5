"""Pattern names (`PATTERNS`) and the command-line spec grammar.

Grammar (case-insensitive names; no spaces)::

    PATTERN := NAME ( ":" OPTION )*  |  N ":" M ( ":" OPTION )*
    OPTION  := VALUE                 positional: fills the pattern's positional options in order
             | KEY "=" VALUE         any option by name

    unstructured (alias irregular)   keep the largest |w| of each tensor
    nm[:N:M]  or  N:M                N of every M along the reduction axis (default 2:4);
                                     options allow_grouped=BOOL, min_channels=INT
    filter[:ALIGN]                   whole output filters of each layer, kept count rounded to ALIGN
    input-channel[:ALIGN]            whole input channels of each layer, likewise
    channel[:importance=l2|l1]       channel groups coupled across layers, removed from the graph
                                     on export (counts rounded by --round-to)
    column                           columns of the [C_out, C_in·kh·kw] view

Examples: "unstructured", "2:4", "1:4", "nm:1:4", "2:4:min_channels=256", "filter:8",
"filter:align=8", "input-channel:align=16", "channel", "column". `str(pattern)` writes the canonical form.

A pattern class registers itself with `@PATTERNS.register("name")`; the grammar, the error
messages and the planner then take it like the built-ins (which patterns.py registers).
"""

from __future__ import annotations

from dataclasses import fields
from importlib import import_module

from ..errors import ConfigError
from ..registry import Registry
from .base import Pattern


def _load_builtins() -> None:
    # patterns.py registers the built-ins on import and imports this module: loading it lazily avoids the cycle
    import_module(".patterns", __package__)


PATTERNS: Registry[type[Pattern]] = Registry("sparsity pattern", loader=_load_builtins, aliases={"irregular": "unstructured"})


def grammar_hint() -> str:
    """Every registered pattern as it is written, in registration order: "unstructured, N:M (e.g. 2:4), ..."."""
    return ", ".join(cls.usage() for _, cls in PATTERNS.items())


def get_pattern(name: str, **options) -> Pattern:
    """The registered pattern called `name` ("unstructured", "nm", "filter", ...) with `options`."""
    cls = PATTERNS.find(name)
    if cls is None:
        raise ConfigError(f"unknown sparsity pattern {name!r}; choose one of: {grammar_hint()}")
    key = cls.name
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"pattern {key!r} has no option {unknown[0]!r} (options: {allowed})")
    return cls(**options)


def parse_pattern(spec: str) -> Pattern:
    """A Pattern from a command-line spec such as "2:4", "nm:1:4", "filter:align=8" (module doc)."""
    text = str(spec).strip()
    parts = text.split(":")
    if not text or any(p == "" for p in parts):
        raise ConfigError(f"bad sparsity pattern {spec!r}; expected one of: {grammar_hint()}")
    if parts[0].isdigit():  # "N:M[:options]"
        name, values = "nm", parts
    else:
        name, values = parts[0], parts[1:]
    cls = PATTERNS.find(name)
    if cls is None:
        raise ConfigError(f"unknown sparsity pattern {name!r} in {spec!r}; choose one of: {grammar_hint()}")
    key = cls.name
    types = {f.name: type(f.default) for f in fields(cls)}
    options: dict[str, object] = {}
    positional = list(cls.positional)
    for value in values:
        if "=" in value:
            option, _, raw = value.partition("=")
            option = option.strip().lower()
        elif positional:
            option, raw = positional[0], value
        else:
            raise ConfigError(f"pattern {key!r} takes no positional value, got {value!r} in {spec!r}")
        if option not in types:
            allowed = ", ".join(types) or "none"
            raise ConfigError(f"pattern {key!r} has no option {option!r} in {spec!r} (options: {allowed})")
        if option in options:
            raise ConfigError(f"option {option!r} given twice in {spec!r}")
        if option in positional:
            positional = positional[positional.index(option) + 1:]
        options[option] = _convert(raw, types[option], option, spec)
    return cls(**options)


def _convert(raw: str, kind: type, option: str, spec: str):
    raw = raw.strip()
    if kind is bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"option {option!r} in {spec!r} must be true or false, got {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"option {option!r} in {spec!r} must be an integer, got {raw!r}") from None
    return raw
