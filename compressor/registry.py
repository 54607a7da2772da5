"""One registry type for every plug-in: operators, methods, patterns, tasks, runtimes and stages.

    METHODS = Registry("method")

    @METHODS.register("slr")
    class SLRPruning(Method): ...

    METHODS.get("slr")          # the class; an unknown name is a one-line ConfigError listing the known ones
    METHODS.find("slr")         # the same, or None

A registry may name a `loader`: a function run once, on the first lookup, that imports the modules
whose decorators fill it (the operator modules, the built-in methods). The registry can then be
imported by those modules without an import cycle, and `import compressor` stays light.

Tests register toy plug-ins for the length of a `with REGISTRY.registered(name, obj):` block.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Generic, Hashable, Iterator, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, *, loader: Callable[[], None] | None = None, aliases: dict[str, str] | None = None):
        self.kind = kind  # named in error messages: "unknown method 'x'"
        self._entries: dict[Hashable, T] = {}
        self._loader = loader
        self._loaded = loader is None
        self._aliases = dict(aliases or {})

    def register(self, name: Hashable, obj: T | None = None):
        """Register `obj` under `name`; without `obj`, a decorator that registers what it decorates.
        A class gets `name` as its `name` attribute when it has none of its own."""

        def add(value: T) -> T:
            if name in self._entries:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            if isinstance(value, type) and isinstance(name, str) and not value.__dict__.get("name"):
                value.name = name
            self._entries[name] = value
            return value

        return add if obj is None else add(obj)

    def alias(self, short: str, name: Hashable) -> None:
        """`short` (any case) also names the entry `name`, e.g. a runtime's short command-line name."""
        if short.lower() in self._aliases and self._aliases[short.lower()] != name:
            raise RuntimeError(f"{self.kind} alias {short!r} already names {self._aliases[short.lower()]!r}")
        self._aliases[short.lower()] = name

    def unregister(self, name: Hashable) -> None:
        del self._entries[name]

    @contextmanager
    def registered(self, name: Hashable, obj: T) -> Iterator[T]:
        """`obj` registered under `name` inside the block only (tests, experiments)."""
        self._load()
        self.register(name, obj)
        try:
            yield obj
        finally:
            self.unregister(name)

    def canonical(self, name: Hashable) -> Hashable:
        if isinstance(name, str):
            lowered = name.lower()
            return self._aliases.get(lowered, lowered if lowered in self._entries else name)
        return name

    def find(self, name: Hashable) -> T | None:
        self._load()
        return self._entries.get(self.canonical(name))

    def get(self, name: Hashable) -> T:
        found = self.find(name)
        if found is None:
            raise ConfigError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}")
        return found

    def names(self) -> list[str]:
        self._load()
        return sorted(str(k) for k in self._entries)

    def items(self) -> list[tuple[Hashable, T]]:
        self._load()
        return list(self._entries.items())

    def __contains__(self, name: Hashable) -> bool:
        return self.find(name) is not None

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # first: a loader's imports may look the registry up again
            self._loader()
