"""Name → class registries with "did you mean" errors (timm ``register_model`` + MONAI ``look_up_option``)."""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

__all__ = [
    "DATASETS",
    "METHODS",
    "DeclaredClass",
    "Registry",
    "UnknownNameError",
    "declared_classes",
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
    that the list equals the imported registry. Files are parsed one at a time and dropped (``declared_classes``
    reads the same decorators, with the facts a dry-run needs).
    """
    spec = importlib.util.find_spec(package)
    names: set[str] = set()
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for path in sorted(Path(folder).rglob("*.py")):
            try:
                tree = ast.parse(path.read_text())
            except (OSError, SyntaxError, UnicodeDecodeError):
                continue
            names.update(n for n in (_registered_as(c, registry) for c in _classes(tree)) if n is not None)
    return sorted(names)


class DeclaredClass(NamedTuple):
    """A class registered with ``@<registry>.register("name")``, as read from its source file (nothing imported).

    ``mmbench sweep --dry-run`` expands a grid from these facts instead of the imported registries, so it does not
    import Lightning; ``tests/test_import_free.py`` compares every field with the imported class.

    Attributes:
        name: registry name, e.g. ``"shaspec"``.
        class_name: e.g. ``"ShaSpec"``.
        module: defining module, e.g. ``"mmbench.methods.shaspec"``.
        public_path: ``<package>.<class_name>`` when the defining module's package re-exports the class (e.g.
            ``mmbench.methods.ShaSpec``), else ``<module>.<class_name>``.
        import_paths: every dotted path that imports the class through the ``__init__`` re-exports of the packages
            above its module (defining path first), e.g. ``mmbench.data.BraTSDataModule``.
        supported_tasks: task values of the class attribute ``supported_tasks`` (inherited ones included); ``()``
            when no class in the chain sets it; ``None`` when it is set to something other than a literal (a tuple
            of ``Task`` members or strings, or ``tuple(Task)``).
        task: the task value of a ``task`` property (or attribute) that is a literal (``return Task.SEGMENTATION``),
            else ``None``.
        task_arg: ``__init__`` takes a ``task`` argument (the data YAML chooses the task).
        task_default: that argument's default value (``None``: none, or the task is inferred from the data).
        task_choices: the task values that argument accepts (``Literal[...]`` strings and ``Task`` members).
        dataset_name: the class attribute ``name`` when it is a string literal (``"avmnist"``), else ``None``.
    """

    name: str
    class_name: str
    module: str
    public_path: str
    import_paths: tuple[str, ...]
    supported_tasks: tuple[str, ...] | None = ()
    task: str | None = None
    task_arg: bool = False
    task_default: str | None = None
    task_choices: tuple[str, ...] = ()
    dataset_name: str | None = None

    def spellings(self) -> frozenset[str]:
        """The names a config may give the class: class name, defining path, public path and registry name."""
        return frozenset({self.class_name, f"{self.module}.{self.class_name}", self.public_path, self.name})


_Found = tuple[str, ast.ClassDef]  # (module, class definition)
_MAX_DEPTH = 20  # re-export chains and base classes followed at most this deep


class _Source:
    """The parsed source files of one top-level package, addressed by module name (for ``declared_classes``).

    Only the package's own files are read: names imported from other distributions (``lightning``, ``torch``) stay
    unresolved, so a base class outside the package contributes nothing.
    """

    def __init__(self, top: str) -> None:
        spec = importlib.util.find_spec(top)  # a top-level spec: finds, does not import
        self.top = top
        self.roots = [Path(f) for f in (spec.submodule_search_locations or [])] if spec is not None else []
        self._trees: dict[str, ast.Module | None] = {}

    def file(self, module: str) -> Path | None:
        parts = module.split(".")
        if parts[0] != self.top:
            return None
        for root in self.roots:
            base = root.joinpath(*parts[1:])
            for candidate in (base / "__init__.py", base.with_suffix(".py") if len(parts) > 1 else None):
                if candidate is not None and candidate.is_file():
                    return candidate
        return None

    def module_of(self, path: Path) -> str:
        for root in self.roots:
            try:
                rel = path.relative_to(root).with_suffix("")
            except ValueError:
                continue
            parts = [p for p in rel.parts if p != "__init__"]
            return ".".join([self.top, *parts])
        raise ValueError(f"{path} is not in package {self.top}")

    def tree(self, module: str) -> ast.Module | None:
        if module not in self._trees:
            path = self.file(module)
            try:
                self._trees[module] = ast.parse(path.read_text()) if path is not None else None
            except (OSError, SyntaxError, UnicodeDecodeError):
                self._trees[module] = None
        return self._trees[module]

    def is_package(self, module: str) -> bool:
        path = self.file(module)
        return path is not None and path.name == "__init__.py"

    def absolute(self, module: str, node: ast.ImportFrom) -> str:
        """The module an ``import from`` statement of ``module`` reads from (relative imports resolved)."""
        if not node.level:
            return node.module or ""
        package = module if self.is_package(module) else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        return f"{package}.{node.module}" if node.module else package

    def resolve(self, module: str, name: str, depth: int = 0) -> _Found | None:
        """The class bound to ``name`` at the top level of ``module`` (following ``from x import name``)."""
        tree = self.tree(module)
        if tree is None or depth > _MAX_DEPTH:
            return None
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                return module, node
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        return self.resolve(self.absolute(module, node), alias.name, depth + 1)
        return None

    def lookup(self, found: _Found, attr: str, depth: int = 0) -> tuple[str, ast.stmt] | None:
        """The statement defining class attribute ``attr`` in the class or its bases (depth-first, left to right)."""
        module, cls = found
        for stmt in cls.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == attr:
                return module, stmt
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == attr for t in stmt.targets):
                return module, stmt
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and stmt.target.id == attr
                and stmt.value is not None
            ):
                return module, stmt
        if depth < _MAX_DEPTH:
            for base in cls.bases:
                parent = self.resolve(module, base.id) if isinstance(base, ast.Name) else None
                hit = self.lookup(parent, attr, depth + 1) if parent is not None else None
                if hit is not None:
                    return hit
        return None

    def enum_members(self, module: str, node: ast.expr) -> tuple[str, ...] | None:
        """The string values of the enum class ``node`` names (``Task`` → ``("multiclass", ...)``)."""
        found = self.resolve(module, node.id) if isinstance(node, ast.Name) else None
        if found is None:
            return None
        values = [
            stmt.value.value
            for stmt in found[1].body
            if isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and not stmt.targets[0].id.startswith("_")
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        ]
        return tuple(values) or None

    def task_values(self, module: str, node: ast.expr | None) -> tuple[str, ...] | None:
        """Task values of a literal: ``"x"``, ``Task.X``, a tuple/list/set of those, or ``tuple(Task)``."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return (node.value,)
        if isinstance(node, ast.Attribute):
            found = self.resolve(module, node.value.id) if isinstance(node.value, ast.Name) else None
            for stmt in found[1].body if found is not None else []:
                if (
                    isinstance(stmt, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == node.attr for t in stmt.targets)
                    and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)
                ):
                    return (stmt.value.value,)
            return None
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            out: list[str] = []
            for elt in node.elts:
                one = self.task_values(module, elt)
                if one is None or len(one) != 1:
                    return None
                out += one
            return tuple(out)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("tuple", "list")
            and len(node.args) == 1
            and not node.keywords
        ):
            return self.enum_members(module, node.args[0])
        return None

    def annotation_choices(self, module: str, node: ast.expr | None) -> tuple[str, ...]:
        """Task values an annotation admits: the strings of its ``Literal[...]`` and the members of its enums."""
        out: list[str] = []
        for sub in ast.walk(node) if node is not None else ():
            if isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name) and sub.value.id == "Literal":
                out += [
                    c.value for c in ast.walk(sub.slice) if isinstance(c, ast.Constant) and isinstance(c.value, str)
                ]
            elif isinstance(sub, ast.Name):
                out += self.enum_members(module, sub) or ()
        return tuple(dict.fromkeys(out))


def _classes(tree: ast.Module) -> Iterator[ast.ClassDef]:
    return (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef))


def _registered_as(cls: ast.ClassDef, registry: str) -> str | None:
    """The name in a ``@<registry>.register("name")`` decorator of ``cls``, or ``None``."""
    for deco in cls.decorator_list:
        if (
            isinstance(deco, ast.Call)
            and isinstance(deco.func, ast.Attribute)
            and deco.func.attr == "register"
            and isinstance(deco.func.value, ast.Name)
            and deco.func.value.id == registry
            and deco.args
            and isinstance(deco.args[0], ast.Constant)
            and isinstance(deco.args[0].value, str)
        ):
            return deco.args[0].value
    return None


def _import_paths(src: _Source, module: str, class_name: str) -> tuple[str, ...]:
    """``module.class_name`` plus the re-exports of it in the ``__init__`` of each package above ``module``."""
    paths = [f"{module}.{class_name}"]
    package = module if src.is_package(module) else module.rpartition(".")[0]
    while package:
        tree = src.tree(package)
        for node in tree.body if tree is not None else []:
            if isinstance(node, ast.ImportFrom):
                origin = src.absolute(package, node)
                for alias in node.names:
                    path = f"{package}.{alias.asname or alias.name}"
                    if f"{origin}.{alias.name}" in paths and path not in paths:
                        paths.append(path)
        package = package.rpartition(".")[0]
    return tuple(paths)


def _body_value(stmt: ast.stmt) -> ast.expr | None:
    """The literal a class statement gives: an assignment's value, or a property's single ``return`` value."""
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        return stmt.value
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        body = [s for s in stmt.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        if len(body) == 1 and isinstance(body[0], ast.Return):
            return body[0].value
    return None


def _declare(src: _Source, found: _Found, name: str) -> DeclaredClass:
    module, cls = found
    paths = _import_paths(src, module, cls.name)
    package_path = f"{module.rpartition('.')[0]}.{cls.name}"
    public = package_path if package_path in paths else paths[0]

    supported: tuple[str, ...] | None = ()
    hit = src.lookup(found, "supported_tasks")
    if hit is not None:
        supported = src.task_values(hit[0], _body_value(hit[1]))

    task = None
    hit = src.lookup(found, "task")
    if hit is not None:
        values = src.task_values(hit[0], _body_value(hit[1]))
        task = values[0] if values is not None and len(values) == 1 else None

    task_arg, task_default = False, None
    task_choices: tuple[str, ...] = ()
    hit = src.lookup(found, "__init__")
    if hit is not None and isinstance(hit[1], (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = hit[1].args
        positional = [*args.posonlyargs, *args.args]
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        pairs = [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
        for arg, default in pairs:
            if arg.arg == "task":
                task_arg = True
                values = src.task_values(hit[0], default) if default is not None else None
                task_default = values[0] if values is not None and len(values) == 1 else None
                task_choices = src.annotation_choices(hit[0], arg.annotation)

    dataset_name = None
    hit = src.lookup(found, "name")
    if hit is not None:
        value = _body_value(hit[1])
        if isinstance(hit[1], (ast.Assign, ast.AnnAssign)) and isinstance(value, ast.Constant):
            dataset_name = value.value if isinstance(value.value, str) else None

    return DeclaredClass(
        name=name,
        class_name=cls.name,
        module=module,
        public_path=public,
        import_paths=paths,
        supported_tasks=supported,
        task=task,
        task_arg=task_arg,
        task_default=task_default,
        task_choices=task_choices,
        dataset_name=dataset_name,
    )


@functools.cache
def declared_classes(package: str, registry: str) -> tuple[DeclaredClass, ...]:
    """Every class of ``package`` (and its subpackages) decorated with ``@<registry>.register("name")``, from source.

    Nothing is imported (``importlib.util.find_spec`` of the top-level package only locates it). Sorted by name.

    Example::

        >>> shaspec = {d.name: d for d in declared_classes("mmbench.methods", "METHODS")}["shaspec"]
        >>> shaspec.public_path
        'mmbench.methods.ShaSpec'
    """
    src = _Source(package.partition(".")[0])
    base = src.file(package)
    if base is None or base.name != "__init__.py":
        return ()
    out: dict[str, DeclaredClass] = {}
    for path in sorted(base.parent.rglob("*.py")):
        module = src.module_of(path)
        tree = src.tree(module)
        for node in _classes(tree) if tree is not None else ():
            name = _registered_as(node, registry)
            if name is not None and name not in out:
                out[name] = _declare(src, (module, node), name)
    return tuple(out[n] for n in sorted(out))


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
