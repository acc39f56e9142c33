"""Name → class registries with "did you mean" errors (timm ``register_model`` + MONAI ``look_up_option``)."""

from __future__ import annotations

import ast
import difflib
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = [
    "DATASETS",
    "METHODS",
    "Registry",
    "UnknownNameError",
    "declared_names",
    "install_slug_resolution",
    "unknown_name_message",
]

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
    """Build ``unknown <kind> 'x'; did you mean 'y'? Valid <kind>s: a, b, c`` (the match ignores case)."""
    by_lower = {v.lower(): v for v in valid}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
    hint = f"; did you mean {by_lower[close[0]]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} Valid {kind}s: {', '.join(sorted(valid))}"


def declared_names(package: str, registry: str) -> list[str]:
    """Names registered with ``@<registry>.register("name")`` in ``package`` and its subpackages (read, not imported).

    ``mmbench --help`` lists methods and datasets this way, so it does not import torch or Lightning; a test checks
    that the list equals the imported registry.
    """
    spec = importlib.util.find_spec(package)
    names: set[str] = set()
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for path in sorted(Path(folder).rglob("*.py")):
            try:
                tree = ast.parse(path.read_text())
            except (OSError, SyntaxError, UnicodeDecodeError):
                continue
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "register"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == registry
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    names.add(node.args[0].value)
    return sorted(names)


METHODS: Registry[type] = Registry("method")
DATASETS: Registry[type] = Registry("dataset")


def _slug_target(base: Any, name: str) -> type | None:
    """The registered class named ``name`` (a method or dataset slug) when it is a subclass of ``base``."""
    bases = base if isinstance(base, tuple) else (base,)
    for registry in (METHODS, DATASETS):
        if name in registry:
            cls = registry.get(name)
            try:
                if any(isinstance(b, type) and issubclass(cls, b) for b in bases):
                    return cls
            except TypeError:
                return None
    return None


def install_slug_resolution() -> None:
    """Let jsonargparse accept registry slugs wherever it accepts a class name (``class_path: late_fusion``).

    jsonargparse resolves a dot-less ``class_path`` by searching the subclasses of the expected type for that class
    name; this wraps its resolver (``jsonargparse._typehints.resolve_class_path_by_name``, also bound in
    ``jsonargparse._from_config``) so that a registered slug resolves to its class first. Idempotent.
    """
    from jsonargparse import _from_config, _typehints

    original = _typehints.resolve_class_path_by_name
    if getattr(original, "_mmbench_slugs", False):
        return

    def resolve(cls: Any, name: str) -> str:
        if isinstance(name, str) and "." not in name:
            target = _slug_target(cls, name)
            if target is not None:
                return f"{target.__module__}.{target.__name__}"
        return str(original(cls, name))

    resolve._mmbench_slugs = True  # type: ignore[attr-defined]
    _typehints.resolve_class_path_by_name = resolve
    if hasattr(_from_config, "resolve_class_path_by_name"):
        _from_config.resolve_class_path_by_name = resolve
