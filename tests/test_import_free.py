"""Issue 15 item 14: ``mmbench --help``, ``mmbench leaderboard`` and ``mmbench sweep --dry-run`` import neither
Lightning nor torch (``mmbench.masks``, whose classes type a sweep spec, imports torch only where it makes tensors).

* the static index (``mmbench.registry.declared_classes``: registered classes read from source) equals the imported
  registries for every method and dataset, and the comparison catches drift;
* a plain dry-run (``expand(static=True)``) gives the grid, notes and errors of the imported expansion for every
  sweep in ``experiments/``;
* each light command runs in a fresh interpreter that reports, at exit, which heavy modules it imported.
"""

from __future__ import annotations

import csv
import inspect
import json
import subprocess
import sys
import textwrap
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from mmbench import sweep
from mmbench.errors import MMBenchError
from mmbench.registry import DATASETS, METHODS, DeclaredClass, Registry, UnknownNameError, declared_classes
from mmbench.schema import COMPLETE_MARKER, RESULT_COLUMNS, RESULTS_FILE
from mmbench.sweep import grid as grid_module

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted([*ROOT.glob("experiments/sweeps/*.yaml"), *ROOT.glob("experiments/paper/sweeps/*.yaml")])
SMOKE = ROOT / "experiments/sweeps/smoke.yaml"
HEAVY = ("lightning", "lightning.pytorch", "pytorch_lightning", "torch")


# ------------------------------------------------------------------------------------------- the static index
def _values(obj: Any) -> tuple[str, ...]:
    """Task values of an enum class, an enum member, a string or a sequence of those."""
    if isinstance(obj, type) and issubclass(obj, Enum):
        return tuple(str(m.value) for m in obj)
    if isinstance(obj, Enum):
        return (str(obj.value),)
    if isinstance(obj, str):
        return (obj,)
    return tuple(v for x in obj for v in _values(x))


def _annotation_values(annotation: Any) -> tuple[str, ...]:
    """The task values a resolved annotation admits (``Literal`` strings and enum members; ``None`` dropped)."""
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _values(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(a for a in typing.get_args(annotation) if isinstance(a, str))
    return tuple(v for a in typing.get_args(annotation) for v in _annotation_values(a))


def _fixed_task(cls: type) -> str | None:
    """What the class's ``task`` property returns without ``__init__`` (``None`` when it needs an instance)."""
    attr = inspect.getattr_static(cls, "task", None)
    if isinstance(attr, property) and attr.fget is not None:
        try:
            value = attr.fget(cls.__new__(cls))
        except Exception:
            return None
    else:
        value = attr
    values = _values(value) if isinstance(value, (str, Enum)) else ()
    return values[0] if values else None


def index_mismatches(declared: tuple[DeclaredClass, ...], registry: Registry[type], kind: str) -> list[str]:
    """Every way the static index ``declared`` disagrees with the imported ``registry`` (``kind``: method/dataset)."""
    found = {d.name: d for d in declared}
    out = [f"{kind} {n!r}: registered but not found in the source" for n in registry.names() if n not in found]
    out += [f"{kind} {n!r}: in the source but not registered" for n in found if n not in registry]
    for name, cls in registry.items():
        d = found.get(name)
        if d is None:
            continue
        facts: dict[str, tuple[Any, Any]] = {
            "class_name": (d.class_name, cls.__name__),
            "module": (d.module, cls.__module__),
            "public_path": (d.public_path, grid_module._public_path(cls)),
            "spellings": (d.spellings(), frozenset(grid_module._class_names(cls))),
        }
        for path in d.import_paths:
            module, _, attr = path.rpartition(".")
            facts[f"import path {path}"] = (True, getattr(sys.modules.get(module), attr, None) is cls)
        if kind == "method":
            facts["supported_tasks"] = (d.supported_tasks, _values(getattr(cls, "supported_tasks", ())))
        else:
            params = inspect.signature(cls.__init__).parameters
            facts["task_arg"] = (d.task_arg, "task" in params)
            if "task" in params:
                default = params["task"].default
                facts["task_default"] = (d.task_default, None if default is None else _values(default)[0])
                hint = typing.get_type_hints(cls.__init__)["task"]
                facts["task_choices"] = (set(d.task_choices), set(_annotation_values(hint)))
            facts["task"] = (d.task, _fixed_task(cls))
            if d.task is None and "task" not in params:
                facts["task readable from source"] = (False, True)
            runtime_name = getattr(cls, "name", None)
            facts["dataset_name"] = (d.dataset_name, runtime_name if isinstance(runtime_name, str) else None)
        out += [f"{kind} {name!r}: {k} is {a!r} in the source, {b!r} imported" for k, (a, b) in facts.items() if a != b]
    return out


def test_static_index_matches_the_imported_registries() -> None:
    import mmbench.data
    import mmbench.methods  # noqa: F401  (fill the registries)

    methods = declared_classes("mmbench.methods", "METHODS")
    datasets = declared_classes("mmbench.data", "DATASETS")
    assert [d.name for d in methods] == METHODS.names() and len(methods) >= 5
    assert [d.name for d in datasets] == DATASETS.names() and len(datasets) >= 3
    assert index_mismatches(methods, METHODS, "method") == []
    assert index_mismatches(datasets, DATASETS, "dataset") == []
    # every registered class is fully readable: a plain dry-run never needs to import one
    assert all(d.supported_tasks is not None for d in methods)
    assert all(d.task is not None or d.task_arg for d in datasets)


DRIFT_PACKAGE = {
    "__init__.py": "from mmbench.registry import Registry\nTHINGS = Registry('thing')\n",
    "kinds.py": "from enum import Enum\n\nclass Kind(str, Enum):\n    A = 'a'\n    B = 'b'\n",
    "things.py": textwrap.dedent(
        """
        from driftpkg import THINGS
        from driftpkg.kinds import Kind

        @THINGS.register("steady")
        class Steady:
            supported_tasks = (Kind.A, Kind.B)
            name = "steady"

            @property
            def task(self):
                return Kind.A

        @THINGS.register("patched")
        class Patched(Steady):
            supported_tasks = (Kind.A,)

        Patched.supported_tasks = (Kind.A, Kind.B)  # set after the class body: the source says (Kind.A,)
        Patched.name = "renamed"
        Patched.task = property(lambda self: Kind.B)
        THINGS.register("hidden")(type("Hidden", (), {}))  # registered without a decorator
        """
    ),
}


def test_the_comparison_catches_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "driftpkg"
    pkg.mkdir()
    for name, text in DRIFT_PACKAGE.items():
        (pkg / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    declared = declared_classes("driftpkg", "THINGS")
    assert "driftpkg" not in sys.modules  # reading the index imported nothing of the package
    import driftpkg.things  # noqa: F401
    from driftpkg import THINGS

    patched, steady = declared
    assert steady.name == "steady" and steady.supported_tasks == ("a", "b") and steady.task == "a"
    assert patched.supported_tasks == ("a",) and patched.task == "a" and patched.dataset_name == "steady"
    for kind in ("method", "dataset"):
        problems = index_mismatches(declared, THINGS, kind)
        assert f"{kind} 'hidden': registered but not found in the source" in problems
        assert not any(p.startswith(f"{kind} 'steady'") for p in problems), problems
        if kind == "method":
            assert any(p.startswith("method 'patched': supported_tasks is ('a',)") for p in problems), problems
        else:
            assert any(p.startswith("dataset 'patched': task is 'a' in the source, 'b'") for p in problems), problems
            assert any("'patched': dataset_name is 'steady' in the source, 'renamed'" in p for p in problems)
    monkeypatch.delitem(sys.modules, "driftpkg.things")
    monkeypatch.delitem(sys.modules, "driftpkg.kinds")
    monkeypatch.delitem(sys.modules, "driftpkg")


def test_unreadable_facts_are_none_not_guessed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "vaguepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from vaguepkg.mod import Vague\n")
    (pkg / "mod.py").write_text(
        textwrap.dedent(
            """
            from typing import Literal
            TASKS = ("a",)

            @REG.register("vague")
            class Vague:
                supported_tasks = TASKS

                def __init__(self, task: Literal["a", "b"] | None = None) -> None:
                    self._task = task

                @property
                def task(self):
                    return self._task
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (vague,) = declared_classes("vaguepkg", "REG")
    assert vague.supported_tasks is None and vague.task is None
    assert vague.task_arg and vague.task_default is None and vague.task_choices == ("a", "b")
    assert vague.public_path == "vaguepkg.Vague" and vague.import_paths == ("vaguepkg.mod.Vague", "vaguepkg.Vague")


# ------------------------------------------------------------------------------- the dry-run's grid is unchanged
def _expand(*args: str, static: bool) -> sweep.Grid:
    loaded, options = sweep.load_spec(list(args))
    return sweep.expand(loaded, num_seeds=options["num_seeds"], check=False, allow_unavailable=True, static=static)


def _summary(grid: sweep.Grid) -> tuple[Any, ...]:
    cells = [(c.cell_id, c.argv, c.definition, c.note, c.method_name) for c in grid.cells]
    return grid.root, cells, grid.notes, sweep.format_grid(grid)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("spec", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_static_expansion_equals_the_imported_one(spec: Path, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(ROOT)
    args = ["--config", str(spec.relative_to(ROOT)), f"--output={tmp_path}"]
    static, imported = _expand(*args, static=True), _expand(*args, static=False)
    assert _summary(static) == _summary(imported)
    assert [c.expect for c in static.cells if not c.note] == [c.expect for c in imported.cells if not c.note]


def _restrict(monkeypatch: pytest.MonkeyPatch, name: str, tasks: tuple[str, ...]) -> None:
    """Make method ``name`` support only ``tasks``, both imported and in the static index."""
    import mmbench.methods  # noqa: F401
    from mmbench.types import Task

    monkeypatch.setattr(METHODS.get(name), "supported_tasks", tuple(Task(t) for t in tasks))
    real = grid_module._declared

    def declared(kind: str) -> dict[str, DeclaredClass]:
        out = dict(real(kind))
        if kind == "method":
            out[name] = out[name]._replace(supported_tasks=tasks)
        return out

    monkeypatch.setattr(grid_module, "_declared", declared)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--methods=[late_fusoin]"], UnknownNameError),
        (["--methods=all", "--exclude_methods=[shaspecc]"], UnknownNameError),
        (["--methods=[late_fusion]"], MMBenchError),  # restricted to segmentation below
        (["--datasets=[experiments/data/mfeat.yaml]", "--methods=[late_fusion]"], MMBenchError),
        (["--rates=[7]"], MMBenchError),
    ],
    ids=["unknown-method", "unknown-excluded", "task-mismatch", "task-from-data", "bad-rate"],
)
def test_static_errors_equal_the_imported_ones(args, error, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(ROOT)
    _restrict(monkeypatch, "late_fusion", ("segmentation",))
    full = ["--config", str(SMOKE.relative_to(ROOT)), f"--output={tmp_path}", *args]
    with pytest.raises(error) as imported:
        _expand(*full, static=False)
    with pytest.raises(error) as static:
        _expand(*full, static=True)
    assert str(static.value) == str(imported.value)
    assert "cannot run" in str(static.value) or "unknown method" in str(static.value) or "rate" in str(static.value)


def test_methods_all_leaves_out_the_same_methods(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(ROOT)
    _restrict(monkeypatch, "late_fusion", ("segmentation",))
    for data in ("experiments/data/avmnist_lite.yaml", "experiments/data/mfeat.yaml"):
        args = [
            "--config",
            str(SMOKE.relative_to(ROOT)),
            f"--output={tmp_path}",
            "--methods=all",
            f"--datasets=[{data}]",
        ]
        static, imported = _expand(*args, static=True), _expand(*args, static=False)
        assert _summary(static) == _summary(imported)
        assert any("late_fusion left out" in n for n in static.notes), static.notes


def test_a_task_only_the_data_can_tell_is_read_from_an_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    features = grid_module._declared("dataset")["features"]
    ds = grid_module._Dataset("f", "experiments/data/mfeat.yaml", {}, "")
    monkeypatch.chdir(ROOT)
    assert features.task is None and features.task_default is None  # inferred from the labels
    assert grid_module._static_task(features, ds) is None
    assert grid_module._static_facts(features, ds, [sweep.MethodEntry("late_fusion")]) == {"dataset": "features"}
    _restrict(monkeypatch, "late_fusion", ("segmentation",))
    assert grid_module._static_facts(features, ds, [sweep.MethodEntry("late_fusion")]) is None  # → instantiate
    synthetic = grid_module._declared("dataset")["synthetic"]
    regression = grid_module._Dataset("s", "experiments/data/mfeat.yaml", {"task": "regression"}, "")
    assert grid_module._static_task(synthetic, regression) == "regression"


# --------------------------------------------------------------------------- light commands in a fresh interpreter
def _run_main(argv: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``mmbench.cli.main(argv)`` in a fresh interpreter; the heavy modules imported when it returned."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from mmbench.cli import main
        try:
            main({argv!r})
        except SystemExit as e:
            if e.code not in (0, None):
                raise
        print("IMPORTED " + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("IMPORTED ")]
    return out, json.loads(line.removeprefix("IMPORTED "))


def _tiny_sweep_dir(root: Path) -> Path:
    """Two complete cells (methods a and b, seed 1) of a two-modality classification sweep."""
    for method, acc in (("late_fusion", 0.8), ("mean_fill", 0.7)):
        cell = root / "tiny" / f"synthetic__{method}__seed1"
        cell.mkdir(parents=True)
        with open(cell / RESULTS_FILE, "w", newline="") as f:
            w = csv.DictWriter(f, RESULT_COLUMNS)
            w.writeheader()
            for pid, pattern in ((1, "x"), (2, "y"), (3, "x+y"), (0, "all")):
                base = {c: "" for c in RESULT_COLUMNS}
                w.writerow(
                    base
                    | {
                        "dataset": "synthetic",
                        "task": "multiclass",
                        "method": method,
                        "training_regime": "non-dedicated",
                        "train_missing": "bernoulli(min_present=1)",
                        "train_missing_rate": "0.3",
                        "eval_protocol": "all_patterns",
                        "pattern_id": str(pid),
                        "pattern": pattern,
                        "n_observed": "" if pid == 0 else str(bin(pid).count("1")),
                        "metric": "acc",
                        "value": str(acc - 0.1 * (pid == 2)),
                        "n": "10",
                        "seed": "1",
                        "mask_seed": "0",
                        "mask_hash": "sha256:00",
                        "run_dir": str(cell),
                    }
                )
        (cell / COMPLETE_MARKER).write_text("{}")
    return root / "tiny"


def test_help_imports_neither_lightning_nor_torch() -> None:
    out, heavy = _run_main(["--help"], ROOT)
    assert "late_fusion" in out.stdout and "avmnist" in out.stdout  # the registries were listed
    assert heavy == []


def test_leaderboard_imports_neither_lightning_nor_torch(tmp_path: Path) -> None:
    runs = _tiny_sweep_dir(tmp_path / "runs")
    out, heavy = _run_main(["leaderboard", str(runs), f"--out={tmp_path / 'lb'}", "--plots=false"], ROOT)
    assert (tmp_path / "lb").is_dir() and any((tmp_path / "lb").iterdir()), out.stdout[-2000:]
    assert "late_fusion" in (tmp_path / "lb" / "leaderboard.csv").read_text()
    assert heavy == []
    _, heavy = _run_main(["leaderboard", "--help"], ROOT)
    assert heavy == []


def test_masks_import_without_torch() -> None:
    code = (
        "import sys, mmbench.masks, mmbench.sweep; print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dry_run_imports_neither_lightning_nor_torch(tmp_path: Path) -> None:
    # typed missingness and protocol entries with arguments, parsed by jsonargparse (mmbench.masks classes)
    missing = '--missing=[{"class_path": "FixedPattern", "init_args": {"observed": ["image"]}}]'
    protocols = '--eval_protocols=[{"class_path": "RateProtocol", "init_args": {"rate": 0.5}}]'
    args = ["sweep", "--config", str(SMOKE), f"--output={tmp_path}", missing, protocols, "--dry-run"]
    out, heavy = _run_main(args, ROOT)
    assert "fixed-image" in out.stdout and heavy == [], out.stdout
    out, heavy = _run_main(["sweep", "--config", str(SMOKE), f"--output={tmp_path}", "--dry-run"], ROOT)
    assert "cells" in out.stdout and "pending" in out.stdout, out.stdout
    assert heavy == []
    out, heavy = _run_main(
        ["sweep", "--config", str(SMOKE), f"--output={tmp_path}", "--dry-run", "--check=true"], ROOT
    )  # the full check instantiates every pair, as before
    assert "lightning" in heavy and "cells" in out.stdout
