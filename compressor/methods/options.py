"""Method options as the command line sees them, derived from the methods' Config dataclasses.

Every Config field declared with `option(...)` becomes one command-line flag; a field that several
methods share (epochs, rho) becomes one flag whose help names each method's default. Fields
without help (tuning constants such as OLMP's population) are reachable through the generic
`--method-option KEY=VALUE`. Nothing here lists a method or an option by name.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields

from ..errors import ConfigError
from ..typed_options import convert, field_type, split_pairs
from .base import METHODS


@dataclass(frozen=True)
class MethodOption:
    dest: str  # the Config field name, also the Python API keyword
    flag: str  # --epochs, --slr-M
    type: type  # int | float | str | bool
    choices: tuple[str, ...] | None
    help: str  # composed from the methods' help texts and defaults
    methods: tuple[str, ...]


def method_options() -> list[MethodOption]:
    """One entry per distinct flag over all registered methods, in a stable order."""
    by_flag: dict[str, list[tuple[str, object, object]]] = {}
    for name, cls in sorted(METHODS.items(), key=lambda item: str(item[0])):
        for f in fields(cls.Config):
            if not f.metadata.get("help"):
                continue
            flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            by_flag.setdefault(flag, []).append((name, cls, f))
    result = []
    for flag, entries in by_flag.items():
        dests = {f.name for _, _, f in entries}
        if len(dests) > 1:
            raise RuntimeError(f"methods spell {flag} for different fields: {sorted(dests)}")
        _, cls, first = entries[0]
        choices = first.metadata.get("choices")
        result.append(MethodOption(dest=first.name, flag=flag, type=field_type(cls.Config, first.name),
                                   choices=tuple(choices) if choices else None, help=_help(entries),
                                   methods=tuple(name for name, _, _ in entries)))
    return result


def _default_text(f) -> str:
    if f.metadata.get("default_text"):
        return f.metadata["default_text"]
    return "none" if f.default is MISSING else f"{f.default:g}" if isinstance(f.default, float) else str(f.default)


def _help(entries) -> str:
    """'slr, admm: Penalty weight rho (default 0.1).', one sentence per distinct text and default."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name, _, f in entries:
        groups.setdefault((f.metadata["help"].rstrip("."), _default_text(f)), []).append(name)
    return " ".join(f"{', '.join(names)}: {text} (default {default})." for (text, default), names in groups.items())


def parse_method_options(values: tuple[str, ...] | list[str], method: str) -> dict:
    """`--method-option KEY=VALUE` values as typed options of `method`'s Config."""
    cls = METHODS.get(method)
    known = {f.name: f for f in fields(cls.Config)}
    parsed = {}
    for key, raw in split_pairs(values, "--method-option", "population=20"):
        if key not in known:
            raise ConfigError(f"method {cls.name!r} has no option {key!r} (options: {', '.join(sorted(known))})")
        parsed[key] = convert(raw, field_type(cls.Config, key), f"--method-option {key}")
    return parsed
