"""Grid expansion: a spec → checked cells with ids and hashes (``<dataset>__<method>__<missing>__seed<s>__<hash8>``)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmbench.errors import MMBenchError
from mmbench.masks import MissingnessSpec
from mmbench.registry import DeclaredClass, UnknownNameError, unknown_name_message
from mmbench.sweep.markers import PARTIAL_RESULTS
from mmbench.sweep.spec import DatasetEntry, LoadedSpec, MethodEntry, SweepSpec
from mmbench.yamlfile import read_yaml

__all__ = ["Grid", "GridCell", "expand", "missing_label"]

HASH_VERSION = 1
# trainer keys the sweep owns: the CSV logger (and W&B) must write into the cell dir
OWNED_TRAINER_KEYS = ("logger", "default_root_dir")


@dataclass
class GridCell:
    """One grid cell: a ``fit`` + ``test`` run in ``cell_dir``.

    Attributes:
        sweep: sweep name.
        cell_id: ``<dataset>__<method>__<missing>__seed<seed>__<hash8>``.
        dataset: dataset label.
        method: method label.
        method_name: method registry name.
        missing: training missingness label.
        seed: seed.
        digest: full sha256 of the cell definition.
        cell_dir: run dir.
        argv: ``mmbench fit`` arguments (without ``fit``).
        definition: what the hash covers (written to ``cell.json``).
        expect: values every result row must carry (``seed``, and ``method``/``dataset`` when known).
        note: why the cell cannot run yet (dry-run of a dataset that is not available).
    """

    sweep: str
    cell_id: str
    dataset: str
    method: str
    method_name: str
    missing: str
    seed: int
    digest: str
    cell_dir: Path
    argv: list[str]
    definition: dict[str, Any]
    expect: dict[str, str]
    note: str = ""


@dataclass
class Grid:
    """An expanded sweep.

    Attributes:
        spec: the spec.
        root: ``<output>/<name>``.
        cells: the cells, in expansion order (dataset, method, missingness, seed).
        notes: what ``methods: all`` left out and why, and datasets that are not available.
    """

    spec: SweepSpec
    root: Path
    cells: list[GridCell]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Method:
    name: str
    label: str
    class_path: str
    config: str | None
    overrides: dict[str, Any]


@dataclass(frozen=True)
class _Dataset:
    label: str
    config: str
    overrides: dict[str, Any]
    method_suffix: str


@dataclass(frozen=True)
class _Missing:
    label: str
    config: dict[str, Any] | None


def _slug(text: str) -> str:
    out = re.sub(r"[^A-Za-z0-9._+=-]+", "-", text).strip("-.")
    return re.sub(r"_{2,}", "_", out) or "x"


def missing_label(spec: MissingnessSpec) -> str:
    """Readable name of a training missingness spec in cell ids: its ``label()``, made file-name safe."""
    return _slug(spec.label())


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _arg(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _flatten(prefix: str, d: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and "class_path" not in v and v:
            yield from _flatten(key, v)
        else:
            yield key, v


def _seeds(spec: SweepSpec, num_seeds: int | None) -> list[int]:
    seeds = list(dict.fromkeys(spec.seeds))
    if num_seeds is None:
        return seeds
    if num_seeds < 1:
        raise MMBenchError(f"--num_seeds must be >= 1, got {num_seeds}")
    nxt = max(seeds, default=0) + 1
    while len(seeds) < num_seeds:
        seeds.append(nxt)
        nxt += 1
    return seeds[:num_seeds]


def _datasets(spec: SweepSpec) -> list[_Dataset]:
    out = []
    for entry in spec.datasets:
        e = DatasetEntry(config=entry) if isinstance(entry, str) else entry
        label = _slug(e.label or Path(e.config).stem.replace("_", "-"))
        out.append(_Dataset(label, e.config, dict(e.overrides), e.method_suffix))
    labels = [d.label for d in out]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise MMBenchError(f"sweep {spec.name!r}: dataset labels {dup} repeat; give the entries distinct `label`s")
    return out


def _missing_axis(spec: SweepSpec, loaded: LoadedSpec) -> list[_Missing]:
    from mmbench.masks import BernoulliMissing

    axis: list[_Missing] = []
    for rate in spec.rates:
        try:
            bernoulli = BernoulliMissing(float(rate), spec.min_present)
        except ValueError as e:
            raise MMBenchError(f"sweep {spec.name!r}: rates: {e}") from None
        cfg = {
            "class_path": "mmbench.masks.BernoulliMissing",
            "init_args": {"rate": float(rate), "min_present": spec.min_present, "resample_each_epoch": False},
        }
        axis.append(_Missing(missing_label(bernoulli), cfg))
    for inst, cfg in zip(spec.missing, loaded.missing_configs, strict=True):
        axis.append(_Missing(missing_label(inst), cfg))
    if not axis:
        axis.append(_Missing("datacfg", None))
    seen: dict[str, int] = {}
    for m in axis:
        seen[_canonical(m.config)] = seen.get(_canonical(m.config), 0) + 1
    if any(n > 1 for n in seen.values()):
        raise MMBenchError(f"sweep {spec.name!r}: the training missingness list repeats an entry")
    return axis


def _class_names(cls: type) -> set[str]:
    """Every spelling of ``cls`` in a config: class name, defining module path, package path, registry name."""
    names = {cls.__name__, f"{cls.__module__}.{cls.__name__}", _public_path(cls)}
    return names | {getattr(cls, "registry_name", "") or cls.__name__}


def _public_path(cls: type) -> str:
    """``mmbench.methods.ShaSpec`` when the package re-exports the class, else its defining module path."""
    package = cls.__module__.rsplit(".", 1)[0]
    mod = sys.modules.get(package)
    if mod is not None and getattr(mod, cls.__name__, None) is cls:
        return f"{package}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__name__}"


def _declared(kind: str) -> dict[str, DeclaredClass]:
    """The registered methods (``kind="method"``) or datasets as read from source: registry name → facts."""
    from mmbench.registry import declared_classes

    package, registry = ("mmbench.methods", "METHODS") if kind == "method" else ("mmbench.data", "DATASETS")
    return {d.name: d for d in declared_classes(package, registry)}


def _method_names(static: bool) -> list[str]:
    if static:
        return sorted(_declared("method"))
    import mmbench.methods  # noqa: F401  (registers the methods)
    from mmbench.registry import METHODS

    return METHODS.names()


def _method_entries(spec: SweepSpec, static: bool = False) -> tuple[list[MethodEntry], bool]:
    names = _method_names(static)
    for name in spec.exclude_methods:
        if name not in names:
            raise UnknownNameError(
                f"sweep {spec.name!r}: exclude_methods: " + unknown_name_message("method", name, names)
            )
    if spec.methods == "all":
        return [MethodEntry(name=n) for n in names if n not in spec.exclude_methods], True
    entries = [MethodEntry(name=m) if isinstance(m, str) else m for m in spec.methods]
    for e in entries:
        if e.name not in names:
            raise UnknownNameError(f"sweep {spec.name!r}: methods: " + unknown_name_message("method", e.name, names))
    return [e for e in entries if e.name not in spec.exclude_methods], False


def _supported_tasks(name: str, static: bool) -> tuple[str, ...]:
    """Task values method ``name`` supports (``()``: no restriction); from source when ``static`` and literal."""
    if static:
        declared = _declared("method")[name].supported_tasks
        if declared is not None:
            return declared
    import mmbench.methods  # noqa: F401  (registers the methods)
    from mmbench.registry import METHODS

    return tuple(str(t) for t in getattr(METHODS.get(name), "supported_tasks", ()))


def _resolve_method(spec: SweepSpec, entry: MethodEntry, ds: _Dataset, static: bool = False) -> _Method:
    if static:
        declared = _declared("method")[entry.name]
        spellings, public = set(declared.spellings()), declared.public_path
    else:
        from mmbench.registry import METHODS

        cls = METHODS.get(entry.name)
        spellings, public = _class_names(cls), _public_path(cls)
    config = entry.config
    if config is None and spec.method_configs:
        for stem in dict.fromkeys([f"{entry.name}{ds.method_suffix}", entry.name]):
            candidate = Path(spec.method_configs) / f"{stem}.yaml"
            if candidate.is_file():
                config = candidate.as_posix()
                break
    if config is not None:
        content = read_yaml(config)
        model = content.get("model") if isinstance(content, dict) else None
        class_path = model.get("class_path") if isinstance(model, dict) else None
        if isinstance(class_path, str) and class_path not in spellings:
            raise MMBenchError(
                f"sweep {spec.name!r}: {config}: model.class_path {class_path!r} is not method {entry.name!r} "
                f"({public})"
            )
    label = _slug(entry.label or entry.name)
    return _Method(entry.name, label, public, config, dict(entry.overrides))


def _fit_args(
    spec: SweepSpec,
    loaded: LoadedSpec,
    ds: _Dataset,
    m: _Method,
    miss: _Missing,
    seed: int,
    extra: Sequence[str],
) -> list[str]:
    """The semantic ``mmbench fit`` arguments of a cell (no paths of the cell itself)."""
    argv: list[str] = []
    for c in spec.trainer_configs:
        argv += ["--config", c]
    argv += ["--config", ds.config]
    argv += ["--config", m.config] if m.config else [f"--model={m.class_path}"]
    for k, v in _flatten("", m.overrides):
        argv.append(f"--model.init_args.{k}={_arg(v)}")
    for k, v in _flatten("", ds.overrides):
        argv.append(f"--data.init_args.{k}={_arg(v)}")
    if miss.config is not None:
        argv.append(f"--data.init_args.missingness={json.dumps(miss.config)}")
    if loaded.eval_configs is not None:
        argv.append(f"--data.init_args.eval_protocols={json.dumps(loaded.eval_configs)}")
    if spec.vary_mask_seed:
        argv.append(f"--data.init_args.mask_seed={seed}")
    argv.append(f"--seed_everything={seed}")
    for k, v in _flatten("", spec.trainer):
        argv.append(f"--trainer.{k}={_arg(v)}")
    argv += [*spec.args, *extra]
    return argv


def _owned_args(spec: SweepSpec, cell: GridCell) -> list[str]:
    """Arguments the sweep owns, appended last: loggers into the cell dir, the partial results file name."""
    loggers: list[dict[str, Any]] = [
        {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": cell.cell_dir.as_posix(), "name": "", "version": ""},
        }
    ]
    if spec.wandb:
        loggers.append(
            {
                "class_path": "lightning.pytorch.loggers.WandbLogger",
                "init_args": {
                    "project": spec.wandb_project,
                    "name": cell.cell_id,
                    "group": spec.name,
                    "tags": [cell.method, cell.dataset, cell.missing, f"seed{cell.seed}"],
                    "job_type": "sweep-cell",
                    "save_dir": cell.cell_dir.as_posix(),
                    "log_model": False,
                    "config": {
                        "sweep": {
                            "name": spec.name,
                            "cell_id": cell.cell_id,
                            "dataset": cell.dataset,
                            "method": cell.method,
                            "missing": cell.missing,
                            "seed": cell.seed,
                        }
                    },
                },
            }
        )
    return [
        f"--trainer.logger={json.dumps(loggers)}",
        f"--results.filename={PARTIAL_RESULTS}",
        "--test_after_fit=true",
    ]


def _definition(
    spec: SweepSpec, loaded: LoadedSpec, ds: _Dataset, m: _Method, miss: _Missing, seed: int, extra: Sequence[str]
) -> dict[str, Any]:
    """What the cell hash covers: parsed YAML contents (not paths), overrides, missingness, protocols, seed, trainer."""
    data = read_yaml(ds.config) if Path(ds.config).is_file() else {"unavailable": ds.config}
    return {
        "v": HASH_VERSION,
        "dataset": {"content": data, "overrides": ds.overrides},
        "method": {
            "name": m.name,
            "class_path": m.class_path,
            "content": read_yaml(m.config) if m.config else None,
            "overrides": m.overrides,
        },
        "missing": miss.config,
        "eval_protocols": loaded.eval_configs,
        "seed": seed,
        "vary_mask_seed": spec.vary_mask_seed,
        "trainer_configs": [read_yaml(c) for c in spec.trainer_configs],
        "trainer": spec.trainer,
        "args": [*spec.args, *extra],
    }


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Capture stdout/stderr, warnings and Lightning's info logs (the expansion checks instantiate classes)."""
    buf = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield buf
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _data_module(ds: _Dataset, miss: _Missing, loaded: LoadedSpec) -> Any:
    """Instantiate the data module of ``ds`` with ``miss`` (cheap: data modules load lazily or small files)."""
    from jsonargparse import ArgumentParser

    from mmbench.data.base import MultimodalDataModule

    content = read_yaml(ds.config)
    section = content.get("data") if isinstance(content, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("class_path"), str):
        raise MMBenchError(f"{ds.config}: no `data:` section with a class_path")
    init = dict(section.get("init_args") or {})
    init.update(ds.overrides)
    if miss.config is not None:
        init["missingness"] = miss.config
    if loaded.eval_configs is not None:
        init["eval_protocols"] = loaded.eval_configs
    p = ArgumentParser(exit_on_error=False)
    p.add_subclass_arguments(MultimodalDataModule, "data", required=True)
    with _quiet():
        # parse_object turns nested dicts into Namespaces in place: give it a copy
        cfg = p.parse_object(copy.deepcopy({"data": {"class_path": section["class_path"], "init_args": init}}))
        inst = p.instantiate(cfg) if hasattr(p, "instantiate") else p.instantiate_classes(cfg)
    return inst.data


def _data_section(ds: _Dataset) -> tuple[str | None, dict[str, Any]]:
    """``(problem, data section)`` of ``ds``'s YAML; the problem says why it has no ``data.class_path``."""
    if not Path(ds.config).is_file():
        return f"{ds.config} does not exist", {}
    content = read_yaml(ds.config)
    section = content.get("data") if isinstance(content, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("class_path"), str):
        return f"{ds.config} has no data.class_path", {}
    return None, section


def _static_dataset(ds: _Dataset) -> tuple[str | None, DeclaredClass | None]:
    """``(why ds cannot be used, its registered class as read from source)``; nothing imported when registered.

    A dotted ``class_path`` outside the registry is checked as :func:`_dataset_unavailable` does (by importing it),
    and comes back without facts.
    """
    problem, section = _data_section(ds)
    if problem is not None:
        return problem, None
    class_path = section["class_path"]
    declared = list(_declared("dataset").values())
    for d in declared:
        if class_path in d.spellings() or class_path in d.import_paths:
            return None, d
    if "." not in class_path:
        valid = sorted({n for d in declared for n in (d.class_name, d.public_path)})
        return unknown_name_message("dataset class", class_path, valid), None
    return _dataset_unavailable(ds), None


def _static_task(declared: DeclaredClass, ds: _Dataset) -> str | None:
    """The task of ``ds`` from source: the class's literal task, else its YAML's (or the default) ``task`` argument.

    ``None`` when the source does not say (a task inferred from the data, a value the class would reject).
    """
    if declared.task is not None:
        return declared.task
    if not declared.task_arg:
        return None
    init = dict(_data_section(ds)[1].get("init_args") or {})
    init.update(ds.overrides)
    value = init.get("task", declared.task_default)
    return value if isinstance(value, str) and value in declared.task_choices else None


def _needs_task(declared: DeclaredClass, supported: Sequence[tuple[str, ...]]) -> bool:
    """Whether some method (its ``supported_tasks``) could be ruled out by a task among ``declared``'s choices."""
    if not declared.task_choices:
        return any(supported)
    return any(s and not set(declared.task_choices) <= set(s) for s in supported)


def _static_facts(declared: DeclaredClass, ds: _Dataset, entries: Sequence[MethodEntry]) -> dict[str, str] | None:
    """``dataset``/``task`` of ``ds`` from source, or ``None`` when only an instance can tell what the grid needs.

    The task may stay unknown (no ``task`` key) when no method of ``entries`` could be ruled out by it.
    """
    task = _static_task(declared, ds)
    if task is None and _needs_task(declared, [_supported_tasks(e.name, True) for e in entries]):
        return None
    facts = {"task": task} if task is not None else {}
    if declared.dataset_name is not None:
        facts["dataset"] = declared.dataset_name
    return facts


def _dataset_unavailable(ds: _Dataset) -> str | None:
    """Why ``ds`` cannot be used yet (missing YAML, class that does not import), or ``None``."""
    import importlib

    import mmbench.data  # noqa: F401  (registers the data modules)
    from mmbench.registry import DATASETS

    problem, section = _data_section(ds)
    if problem is not None:
        return problem
    class_path = section["class_path"]
    for _, cls in DATASETS.items():
        if class_path in _class_names(cls):
            return None
    if "." not in class_path:
        valid = sorted({n for _, cls in DATASETS.items() for n in (cls.__name__, _public_path(cls))})
        return unknown_name_message("dataset class", class_path, valid)
    module, _, name = class_path.rpartition(".")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        return f"{class_path} cannot be imported ({e})"
    if not hasattr(mod, name):
        return f"{class_path} does not exist (module {module} has no {name})"
    return None


@contextlib.contextmanager
def _restore_env(saved: dict[str, str | None]) -> Iterator[None]:
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_fit(argv: list[str]) -> str | None:
    """Instantiate trainer, data and model of ``mmbench fit argv`` on CPU without running; the error or ``None``."""
    from mmbench.runner import cli_main

    args = [
        *argv,
        "--trainer.logger=false",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.num_nodes=1",
        "--trainer.strategy=auto",
        "--trainer.precision=32-true",
    ]
    saved_env = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    with _quiet() as buf, _restore_env(saved_env):
        try:
            cli_main(args, run=False)
        except (MMBenchError, UnknownNameError) as e:
            return _short_error(str(e))
        except SystemExit:
            text = buf.getvalue()
            found = re.search(r"error: (.*)", text, re.S)
            return _short_error((found.group(1) if found else text).strip() or "argument parsing failed")
        except Exception as e:
            return _short_error(f"{type(e).__name__}: {e}")
    return None


def _short_error(text: str, limit: int = 600) -> str:
    """Shorten jsonargparse's union errors (they list every subtype) to the lines that say what is wrong."""
    if "Union subtypes" in text and "Errors:" in text:
        block = text.split("Errors:", 1)[1].split("Given value", 1)[0]
        useful = [ln.strip().removeprefix("- ") for ln in block.splitlines() if ln.strip() and "NoneType" not in ln]
        if useful:
            text = " ".join(useful)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expand(
    loaded: LoadedSpec,
    *,
    num_seeds: int | None = None,
    extra_args: Sequence[str] = (),
    check: bool = True,
    allow_unavailable: bool = False,
    static: bool = False,
) -> Grid:
    """Expand a spec into cells, checking every method × dataset pair before anything runs.

    Args:
        loaded: the parsed spec.
        num_seeds: use the first ``num_seeds`` seeds (``None`` = all).
        extra_args: more ``mmbench fit`` arguments for every cell.
        check: instantiate each method × dataset pair (and each missingness spec) through the CLI on CPU.
        allow_unavailable: keep cells of datasets whose YAML or class does not exist yet (dry-run) instead of
            raising; they carry a ``note``.
        static: read the registered methods and datasets from source (``mmbench.registry.declared_classes``)
            instead of importing them, and instantiate no data module: the grid, the cell ids and the errors for
            unknown names and unsupported tasks are the same, but neither Lightning nor torch is imported
            (``--dry-run``). A dataset whose task the source does not fix (when a method's ``supported_tasks`` makes
            it matter), or whose class is not registered, is still instantiated; ``check=True`` still instantiates
            every pair.

    Raises:
        MMBenchError: empty grid, incompatible explicit method × dataset pair, invalid spec or config.
        UnknownNameError: unknown method name (with a suggestion).
    """
    spec = loaded.spec
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec.name or ""):
        raise MMBenchError(f"sweep name {spec.name!r} must be letters, digits, '.', '_' or '-'")
    for key in OWNED_TRAINER_KEYS:
        if key in spec.trainer:
            raise MMBenchError(
                f"sweep {spec.name!r}: trainer.{key} is set by the sweep (CSV logger into the cell dir, plus W&B "
                "with `wandb: true`); remove it from the spec"
            )
    if not spec.datasets:
        raise MMBenchError(f"sweep {spec.name!r} has an empty grid: `datasets` is empty")
    seeds = _seeds(spec, num_seeds)
    if not seeds:
        raise MMBenchError(f"sweep {spec.name!r} has an empty grid: `seeds` is empty")
    datasets = _datasets(spec)
    axis = _missing_axis(spec, loaded)
    entries, is_all = _method_entries(spec, static)
    if not entries:
        raise MMBenchError(f"sweep {spec.name!r} has an empty grid: no methods (after exclude_methods)")
    for c in spec.trainer_configs:
        read_yaml(c)

    root = Path(spec.output) / spec.name
    cells: list[GridCell] = []
    notes: list[str] = []
    errors: list[str] = []
    for ds in datasets:
        declared: DeclaredClass | None = None
        if static:
            problem, declared = _static_dataset(ds)
        else:
            problem = _dataset_unavailable(ds)
        if problem is not None:
            if not allow_unavailable:
                raise MMBenchError(f"sweep {spec.name!r}: dataset {ds.label!r} is not available: {problem}")
            notes.append(f"dataset {ds.label}: not available ({problem}); its cells are listed unchecked")
        methods: list[_Method] = []
        dm_facts: dict[str, str] = {}
        static_facts = _static_facts(declared, ds, entries) if declared is not None else None
        if static_facts is not None:
            dm_facts = static_facts
        elif problem is None:
            try:
                dm = _data_module(ds, axis[0], loaded)
            except Exception as e:
                raise MMBenchError(f"sweep {spec.name!r}: dataset {ds.label!r} ({ds.config}): {e}") from None
            dm_facts = {"dataset": str(dm.name), "task": str(dm.task)}
            for miss in axis[1:]:
                try:
                    _data_module(ds, miss, loaded)
                except Exception as e:
                    raise MMBenchError(
                        f"sweep {spec.name!r}: training missingness {miss.label!r} does not fit dataset "
                        f"{ds.label!r} (modalities {list(dm.modalities)}): {e}"
                    ) from None
        for entry in entries:
            m = _resolve_method(spec, entry, ds, static)
            if problem is None:
                supported = _supported_tasks(m.name, static)
                task = dm_facts.get("task")
                if supported and task is not None and task not in supported:
                    why = f"supports {', '.join(supported)}, not {task}"
                    if is_all:
                        notes.append(f"methods: all: {m.name} left out on {ds.label} ({why})")
                    else:
                        errors.append(f"method {m.name!r} cannot run on dataset {ds.label!r}: it {why}")
                    continue
                if check:
                    err = _check_fit(_fit_args(spec, loaded, ds, m, axis[0], seeds[0], extra_args))
                    if err is not None:
                        hint = f" (leave it out with `exclude_methods: [{m.name}]`)" if is_all else ""
                        errors.append(f"method {m.label!r} × dataset {ds.label!r} cannot be instantiated{hint}: {err}")
                        continue
            methods.append(m)
        if problem is None and not methods and not errors:
            notes.append(f"dataset {ds.label}: no registered method supports task {dm_facts.get('task')}")
        for m in methods:
            for miss in axis:
                for seed in seeds:
                    definition = _definition(spec, loaded, ds, m, miss, seed, extra_args)
                    digest = hashlib.sha256(_canonical(definition).encode()).hexdigest()
                    cell_id = f"{ds.label}__{m.label}__{miss.label}__seed{seed}__{digest[:8]}"
                    expect = {"seed": str(seed), "method": m.name}
                    if "dataset" in dm_facts:
                        expect["dataset"] = dm_facts["dataset"]
                    cell = GridCell(
                        sweep=spec.name,
                        cell_id=cell_id,
                        dataset=ds.label,
                        method=m.label,
                        method_name=m.name,
                        missing=miss.label,
                        seed=seed,
                        digest=digest,
                        cell_dir=root / cell_id,
                        argv=[],
                        definition=definition,
                        expect=expect,
                        note=problem or "",
                    )
                    cell.argv = _fit_args(spec, loaded, ds, m, miss, seed, extra_args) + _owned_args(spec, cell)
                    cells.append(cell)
    if errors:
        raise MMBenchError(f"sweep {spec.name!r}: " + "; ".join(errors))
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise MMBenchError(f"sweep {spec.name!r}: identical cells {dup}; give repeated methods distinct overrides")
    if not cells:
        raise MMBenchError(f"sweep {spec.name!r} has an empty grid" + (": " + "; ".join(notes) if notes else ""))
    return Grid(spec, root, cells, notes)
