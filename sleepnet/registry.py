"""One registry type for every pluggable family: backends, attacks, distortions, defences, ...

A ``Registry`` maps names to entries (classes, factories, records). Entries may
be registered directly, with a decorator, or lazily by import path, so that a
family can list a member whose module is heavy (Brian2, torch) without
importing it::

    ATTACKS = Registry("attack")

    @ATTACKS.register("fgsm")
    class FGSM(Attack): ...

    BACKENDS.register_lazy("brian2", "sleepnet.converters.brian2_backend:Brian2Simulator")

``get`` of an unknown name raises ``UnknownName``, one line naming the known
entries, which the CLI prints as its error.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import UsageError

T = TypeVar("T")


class UnknownName(UsageError, ValueError):
    """A name that is not in a registry; the message lists the known ones. A usage error (exit 2) as
    typed on the command line; a file that names it reports it as its own error (exit 1)."""


class Registry(Generic[T]):
    """Named entries of one ``kind`` (used in messages: "unknown attack 'x'")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._order: list[str] = []

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """Add ``entry`` under ``name``; without ``entry``, a decorator that adds what it wraps."""
        if entry is not None:
            self._add(name, entry)
            return entry

        def wrap(obj: T) -> T:
            """Register ``obj`` under ``name`` and return it unchanged."""
            self._add(name, obj)
            return obj

        return wrap

    def register_lazy(self, name: str, target: str) -> None:
        """Add ``"package.module:attribute"`` under ``name``, imported on first ``get``."""
        if ":" not in target:
            raise ValueError(f"lazy target {target!r} must read 'module:attribute'")
        self._check_new(name)
        self._lazy[name] = target
        self._order.append(name)

    def get(self, name: str) -> T:
        """The entry of ``name``; ``UnknownName`` naming the known entries if there is none."""
        if not isinstance(name, str):
            raise UnknownName(f"a {self.kind} is named by text, got {name!r} "
                              f"(known: {', '.join(self.names()) or 'none'})")  # fmt: skip
        if name in self._entries:
            return self._entries[name]
        if name in self._lazy:
            module, attr = self._lazy[name].split(":")
            self._entries[name] = getattr(importlib.import_module(module), attr)  # may raise: stays lazy
            del self._lazy[name]
            return self._entries[name]
        raise UnknownName(f"unknown {self.kind} {name!r} (known: {', '.join(self.names()) or 'none'})")

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order (lazy ones included, not imported)."""
        return tuple(self._order)

    def _check_new(self, name: str) -> None:
        if name in self._order:
            raise ValueError(f"{self.kind} {name!r} is already registered")

    def _add(self, name: str, entry: T) -> None:
        self._check_new(name)
        self._entries[name] = entry
        self._order.append(name)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._order

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
