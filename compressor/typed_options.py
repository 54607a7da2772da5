"""Typed options given as text: a plug-in's frozen Config dataclass is the schema, and command-line
`KEY=VALUE` strings become values of its fields' types. Methods (`--method-option`) and runtimes
(`--runtime-option`) share this, so both refuse an unknown key or a malformed value the same way.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import fields

from .errors import ConfigError


def field_type(config_cls, name: str) -> type:
    """The scalar type of a Config field (`int | None` -> int)."""
    hint = typing.get_type_hints(config_cls)[name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def convert(raw: str, kind: type, label: str):
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{label} must be true or false, got {raw!r}")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise ConfigError(f"{label} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
    if kind is str:
        return raw
    raise ConfigError(f"{label} is not settable from the command line")


def split_pairs(values: Iterable[str], flag: str, example: str) -> list[tuple[str, str]]:
    """`KEY=VALUE` strings as (key, raw value) pairs, keys with '-' spelled '_'."""
    pairs = []
    for value in values:
        key, sep, raw = value.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"bad {flag} {value!r}: expected KEY=VALUE, e.g. {example!r}")
        pairs.append((key, raw.strip()))
    return pairs


def build_config(config_cls, given: Mapping[str, object], owner: str, flag: str):
    """An instance of `config_cls` from `given` (text values are converted to the field's type;
    typed values are checked); an unknown key names the known ones. A field with `choices`
    metadata refuses other values."""
    known = {f.name: f for f in fields(config_cls)}
    values = {}
    for key, value in given.items():
        if key not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"{owner} has no option {key!r} (options: {listed})")
        kind = field_type(config_cls, key)
        label = f"{flag} {key}"
        if isinstance(value, str) and kind is not str:
            value = convert(value, kind, label)
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            if not (kind is float and isinstance(value, int) and not isinstance(value, bool)):
                raise ConfigError(f"{label} must be {kind.__name__}, got {value!r}")
        choices = known[key].metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{label} must be one of {', '.join(map(str, choices))}, got {value!r}")
        values[key] = value
    return config_cls(**values)
