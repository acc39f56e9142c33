"""Name → class registries with "did you mean" errors (timm ``register_model`` + MONAI ``look_up_option``)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["DATASETS", "METHODS", "Registry", "UnknownNameError"]

T = TypeVar("T")


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists the valid names and the closest match."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """A named collection of classes. Names are registered exactly once.

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"method"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator adding ``cls`` under ``name``; a duplicate name raises ``ValueError``."""

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} name {name!r} is already registered to {self._items[name]!r}")
            self._items[name] = obj
            if isinstance(obj, type):
                obj.registry_name = name  # type: ignore[attr-defined]
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the class registered as ``name`` or raise ``UnknownNameError`` listing valid names."""
        if name in self._items:
            return self._items[name]
        raise UnknownNameError(unknown_name_message(self.kind, name, list(self._items)))

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, class)`` pairs, sorted by name."""
        for name in self.names():
            yield name, self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    """Build ``unknown <kind> 'x'; did you mean 'y'? valid: a, b, c``."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} Valid {kind}s: {', '.join(sorted(valid))}"


METHODS: Registry[type] = Registry("method")
DATASETS: Registry[type] = Registry("dataset")
