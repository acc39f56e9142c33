"""The layer rules of docs/architecture.md, checked on the import statements of ``src/mmbench`` (parsed with ast).

Every ``import`` and ``from ... import`` counts, also the ones inside functions (a lazy import is still a
dependency). A module's *component* is the first name after ``mmbench`` (``mmbench.sweep.grid`` → ``sweep``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

FOUNDATION = {"schema", "errors", "types", "masks", "registry", "yamlfile", "safe_io", "provenance"}
# component → the components it may import (besides itself); a component not listed here fails the test
ALLOWED: dict[str, set[str]] = {
    "": set(),  # mmbench/__init__.py
    **{name: FOUNDATION for name in FOUNDATION},
    "functional": FOUNDATION,
    "nn": FOUNDATION | {"functional"},
    "metrics": FOUNDATION | {"functional"},
    "data": FOUNDATION,
    "methods": FOUNDATION | {"functional", "nn", "metrics", "data"},
    "results": FOUNDATION,
    "predictions": FOUNDATION | {"functional"},
    "rescore": FOUNDATION | {"metrics", "results", "leaderboard"},
    "leaderboard": FOUNDATION,
    "runner": FOUNDATION | {"data", "methods", "results", "predictions"},
    "sweep": FOUNDATION | {"data", "methods", "results", "runner"},
    "datacli": FOUNDATION | {"data"},
    "demo": FOUNDATION | {"sweep", "leaderboard", ""},
    "cli": FOUNDATION | {"runner", "demo", "sweep", "leaderboard", "datacli", "rescore"},
    "__main__": {"cli"},
}
# modules that may use the method registry (``import mmbench.methods``) but never a method's own module
NO_METHOD_MODULES = ("sweep", "leaderboard")


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """``module → mmbench modules it imports`` for every ``.py`` under ``src/mmbench``."""
    paths = {module_name(p, src): p for p in sorted((src / "mmbench").rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
                module = ".".join(p for p in (base, node.module or "") if p)
                targets = [module, *(f"{module}.{a.name}" for a in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in paths:  # `from pkg import name`: the longest module prefix
                    target = target.rpartition(".")[0]
                if target and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), i.e. the import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: list[str] = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_circle_finder_finds_circles():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(g) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_import_graph_reads_relative_lazy_and_from_imports(tmp_path):
    pkg = tmp_path / "mmbench"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from mmbench.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from .b import g\n")
    (pkg / "sub" / "b.py").write_text("import mmbench.a\nfrom mmbench import a as x\n")
    g = import_graph(tmp_path)
    assert g["mmbench.a"] == {"mmbench.sub", "mmbench.sub.b"}
    assert g["mmbench.sub"] == {"mmbench.sub.b"}
    assert g["mmbench.sub.b"] == {"mmbench", "mmbench.a"}
    assert circles(g) == [["mmbench.a", "mmbench.sub", "mmbench.sub.b"]]


def test_no_import_circles(graph):
    assert circles(graph) == []


def test_every_component_has_a_layer(graph):
    assert {component(m) for m in graph} <= set(ALLOWED), "add the new component to docs/architecture.md and ALLOWED"


def test_layer_rules(graph):
    broken = [
        f"{m} imports {d}"
        for m, deps in sorted(graph.items())
        for d in sorted(deps)
        if component(d) != component(m) and component(d) not in ALLOWED.get(component(m), set())
    ]
    assert broken == []


def test_sweep_and_leaderboard_never_import_a_method(graph):
    bad = [
        f"{m} imports {d}"
        for m, deps in sorted(graph.items())
        if component(m) in NO_METHOD_MODULES
        for d in sorted(deps)
        if d.startswith(("mmbench.methods.", "mmbench.nn", "mmbench.functional"))
    ]
    assert bad == []


def test_the_architecture_page_names_files_that_exist():
    root = SRC.parent
    text = (root / "docs" / "architecture.md").read_text()
    names = [t for t in re.findall(r"`([^`\s]+)`", text) if (t.endswith((".py", "/")) and "<" not in t)]
    assert len(names) > 20
    package = SRC / "mmbench"
    missing = []
    for name in names:
        if "/" not in name.rstrip("/"):  # a module named inside its package's sentence, e.g. `spec.py`
            found = any(package.rglob(name.rstrip("/")))
        elif name.startswith(("src/", "tests/", "experiments/", "docs/")):
            found = (root / name).exists()
        else:
            found = (package / name).exists()
        if not found:
            missing.append(name)
    assert missing == []
