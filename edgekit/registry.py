"""Lazy plugin registries: names map to ``"module:Class"`` strings, imported on first use.

Nothing heavy (onnxruntime, openvino, LiteRT) loads until a caller asks for that entry, and an
unknown name fails listing the valid ones. Each entry declares its own facts (a backend its
format, suffixes and runtime packages; an exporter its tools and fallbacks): the modules
behind the entries import their heavy libraries only inside functions, so :meth:`entries`
can read every declaration without loading a runtime.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> lazily imported object mapping.

    Args:
        kind: What the entries are ("backend", "board"), used in error messages.
        entries: name -> "package.module:Attribute".
    """

    def __init__(self, kind: str, entries: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, str] = dict(entries or {})

    def register(self, name: str, target: str) -> None:
        """Adds or replaces an entry (plugins may register their own)."""
        if ":" not in target:
            raise ValueError(f"{self.kind} target must be 'module:Attribute', got {target!r}")
        self._entries[name] = target

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def target(self, name: str) -> str:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"Unknown {self.kind} '{name}'.",
                hint=f"Valid {self.kind}s: {', '.join(self.names())}.",
            ) from None

    def entries(self) -> list[tuple[str, T]]:
        """Every entry, imported, in name order: for reading what each declares about itself."""
        return [(name, self.load(name)) for name in self.names()]

    def load(self, name: str) -> T:
        """Imports and returns the entry's object."""
        module_name, _, attribute = self.target(name).partition(":")
        module = importlib.import_module(module_name)
        obj: Any = module
        for part in attribute.split("."):
            obj = getattr(obj, part)
        return obj
