"""A plain name -> builder registry (lm-evaluation-harness / mmengine style).

A miss raises :class:`ConfigError` listing the valid names, so every CLI option that takes a name
(variant, noise, benchmark, profile) fails the same clear way.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from harness.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T | None = None):
        """``reg.register("x", obj)`` or as a decorator ``@reg.register("x")``."""
        if item is not None:
            self._add(name, item)
            return item

        def deco(obj: T) -> T:
            self._add(name, obj)
            return obj

        return deco

    def _add(self, name: str, item: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' registered twice")
        self._items[name] = item

    def get(self, name: str, option: str | None = None) -> T:
        try:
            return self._items[name]
        except KeyError:
            where = f"{option}: " if option else ""
            raise ConfigError(f"{where}unknown {self.kind} '{name}'; valid: {', '.join(self.names())}") from None

    def check(self, name: str, option: str | None = None) -> str:
        self.get(name, option)
        return name

    def names(self) -> list[str]:
        return list(self._items)  # declaration order

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


BuilderRegistry = Registry[Callable[..., object]]
