"""``mmbench sweep``: expand a typed grid spec into cells and run every cell as ``fit`` + ``test`` in its own run dir.

A spec (``experiments/sweeps/NAME.yaml``, parsed into :class:`SweepSpec` by jsonargparse) names datasets (data
YAMLs), methods (registry names, or ``all`` = every registered method whose ``supported_tasks`` covers the
dataset's task), training missingness (``rates`` shorthand and/or typed ``MissingnessSpec`` entries), evaluation
protocols, seeds and trainer overrides. The grid is datasets × methods × missingness × seeds; each cell is one
``mmbench fit`` (which tests after fitting and writes ``results.csv``) in ``<output>/<sweep>/<cell_id>/``::

    <cell_id>/            e.g. avmnist-lite__shaspec__bernoulli0.5__seed1__3f2a9c1e
      .lock               flock held while a process works on the cell (never deleted)
      cell.json           the cell's definition (axes, fit arguments, hash inputs)
      fit.log             stdout/stderr of the cell process (subprocess executors)
      config.yaml  hparams.yaml  metrics.csv  checkpoints/  wandb/   (Lightning, CSV logger, W&B)
      results.csv         tidy result rows; appears only after validation
      COMPLETE            JSON marker written last and atomically; a cell counts only when it exists
      FAILED              JSON with the exit status and log tail when the last attempt failed

The cell id is ``<dataset>__<method>__<missing>__seed<seed>__<hash8>``; the hash covers everything that
determines the results (parsed YAML contents, overrides, missingness, protocols, seed, trainer settings, extra
arguments), so changing any of them makes a new cell instead of silently reusing an old one.

**Resume.** Re-running a sweep skips cells with ``COMPLETE``. Any other cell is cleaned (everything but ``.lock``)
and run again: the fit writes ``results.partial.csv``, which is validated and renamed to ``results.csv`` before
``COMPLETE`` is written, so a cell killed at any point never leaves a ``results.csv`` that counts. Cells hold an
exclusive ``flock`` while running, so two sweep processes never work on (or write into) the same cell.

**Executors** (``local`` and ``slurm`` through submitit, no home-made scheduler):

* ``local``: ``submitit.LocalExecutor``; each cell is its own process, ``parallel`` at a time (default: one cell per
  GPU when GPUs exist, else 1), each GPU cell sees only its GPUs via ``CUDA_VISIBLE_DEVICES``;
* ``slurm``: ``submitit.SlurmExecutor``, one array job (``parallel`` = array parallelism), partition, time limit,
  GPUs and CPUs per cell from ``slurm:`` / ``gpus_per_cell`` or the command line;
* ``debug``: cells run one after another in this process (tests, debugging; no isolation). A plain call, not
  ``submitit.DebugExecutor``, which would open pdb on a failing cell.

A subprocess cell runs ``python -m mmbench sweep _cell TASK.json``, which calls the same :func:`execute_cell` as the
debug executor. Multi-GPU cells use trainer overrides (``trainer: {devices: 2, strategy: ddp}``): Lightning starts the
extra ranks locally; on SLURM the array task gets ``gpus_per_cell`` tasks and Lightning reads the SLURM ranks.

**W&B** (``wandb: true``): every cell is one W&B run (name = cell id, group = sweep name, tags = method, dataset,
missingness, seed) under ``<cell>/wandb/``; offline unless ``WANDB_MODE`` is set. Upload later with
``wandb sync <cell>/wandb/offline-run-*``.

The sweep reads the method registry only to expand ``methods: all`` and to check every method × dataset pair
(``supported_tasks``, then an on-CPU instantiation through the CLI) before anything runs; cells run ``mmbench fit``.
Run it from the repository root (config paths in specs are relative to the working directory).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import datetime as _dt
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mmbench.errors import MMBenchError
from mmbench.masks import EvalProtocol, MissingnessSpec
from mmbench.registry import UnknownNameError, unknown_name_message

__all__ = [
    "COMPLETE",
    "Cell",
    "DatasetEntry",
    "Grid",
    "MethodEntry",
    "SlurmOptions",
    "SweepSpec",
    "cell_status",
    "cli",
    "execute_cell",
    "expand",
    "load_spec",
    "run_grid",
]

COMPLETE = "COMPLETE"
FAILED = "FAILED"
LOCK = ".lock"
CELL_JSON = "cell.json"
FIT_LOG = "fit.log"
RESULTS = "results.csv"
PARTIAL_RESULTS = "results.partial.csv"
OUTCOME_PREFIX = "MMBENCH_SWEEP_OUTCOME "
HASH_VERSION = 1
# trainer keys the sweep owns: the CSV logger (and W&B) must write into the cell dir
OWNED_TRAINER_KEYS = ("logger", "default_root_dir")


# ------------------------------------------------------------------------------------------------------- spec
@dataclass
class MethodEntry:
    """One method of the grid.

    Args:
        name: registry name (``mmbench.registry.METHODS``), e.g. ``"shaspec"``.
        config: method YAML with a ``model:`` section. Default: ``<method_configs>/<name><method_suffix>.yaml``, then
            ``<method_configs>/<name>.yaml`` when they exist, else the class defaults.
        overrides: ``model.init_args`` overrides, e.g. ``{lr: 0.001}``.
        label: name of the method in cell ids (default: ``name``); tells variants of one method apart.
    """

    name: str
    config: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    label: str | None = None


@dataclass
class DatasetEntry:
    """One dataset of the grid.

    Args:
        config: data YAML with a ``data:`` section (e.g. ``experiments/data/avmnist_lite.yaml``).
        label: name of the dataset in cell ids (default: the YAML stem with ``_`` → ``-``).
        overrides: ``data.init_args`` overrides, e.g. ``{batch_size: 32}``.
        method_suffix: suffix of the per-method YAMLs for this dataset (``"_seg"`` → ``methods/<name>_seg.yaml``).
    """

    config: str
    label: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    method_suffix: str = ""


@dataclass
class SlurmOptions:
    """SLURM resources of one cell (one array task).

    Args:
        partition: partition (``None`` = the cluster default).
        time_min: time limit per cell, minutes.
        cpus_per_cell: CPUs per cell (per task when a cell has several GPUs/tasks).
        mem_gb: memory per node, GB (``None`` = cluster default).
        account: ``--account``.
        qos: ``--qos``.
        constraint: ``--constraint``.
        setup: shell lines run before the cell (``module load ...``, ``source .venv/bin/activate``).
        additional: extra ``#SBATCH`` options, e.g. ``{exclude: node12}``.
    """

    partition: str | None = None
    time_min: int = 120
    cpus_per_cell: int = 4
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: list[str] = field(default_factory=list)
    additional: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepSpec:
    """A sweep: datasets × methods × training missingness × seeds, each cell one ``fit`` + ``test``.

    Args:
        name: sweep name; cells go to ``<output>/<name>/<cell_id>/`` and W&B groups by it.
        datasets: data YAML paths or :class:`DatasetEntry` items.
        methods: ``all`` (every registered method that supports the dataset's task) or registry names /
            :class:`MethodEntry` items.
        exclude_methods: registry names left out of ``methods: all``.
        method_configs: folder of per-method YAMLs looked up by name (``None`` = class defaults).
        rates: per-modality Bernoulli missing rates; each is ``BernoulliMissing(rate, min_present)``.
        min_present: ``min_present`` of the ``rates`` shorthand.
        missing: further training missingness specs (``class_path``/``init_args`` of ``mmbench.masks`` classes).
            With neither ``rates`` nor ``missing``, each dataset's own ``missingness`` is used.
        eval_protocols: evaluation protocols of every cell (``None`` = each data YAML's).
        seeds: ``seed_everything`` values.
        vary_mask_seed: also set ``data.mask_seed`` to the seed (default: masks fixed across seeds, as in the YAML).
        trainer_configs: trainer YAMLs applied first (e.g. ``experiments/trainer/default.yaml``).
        trainer: ``trainer.*`` overrides (``max_epochs``, ``devices``, ``strategy``, ...); ``logger`` is the sweep's.
        args: extra ``mmbench fit`` arguments for every cell (part of the cell hash).
        output: root of the run dirs.
        wandb: log every cell to W&B as well (offline unless ``WANDB_MODE`` is set).
        wandb_project: W&B project.
        executor: ``local``, ``slurm`` or ``debug``.
        parallel: cells at a time (``local``; SLURM array parallelism). ``None``: one per GPU, else 1 (SLURM: 256).
        gpus_per_cell: GPUs per cell. ``None``: ``trainer.devices`` (or 1) when the cells use GPUs, else 0.
        threads_per_cell: torch CPU threads per cell. ``None``: CPU cores / ``parallel`` (SLURM: ``cpus_per_cell``).
        timeout_min: time limit of a local cell, minutes.
        slurm: SLURM resources.
    """

    name: str
    datasets: list[str | DatasetEntry]
    methods: Literal["all"] | list[str | MethodEntry] = "all"
    exclude_methods: list[str] = field(default_factory=list)
    method_configs: str | None = "experiments/methods"
    rates: list[float] = field(default_factory=list)
    min_present: int = 1
    missing: list[MissingnessSpec] = field(default_factory=list)
    eval_protocols: list[EvalProtocol] | None = None
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    vary_mask_seed: bool = False
    trainer_configs: list[str] = field(default_factory=list)
    trainer: dict[str, Any] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    output: str = "runs"
    wandb: bool = False
    wandb_project: str = "mmbench"
    executor: Literal["local", "slurm", "debug"] = "local"
    parallel: int | None = None
    gpus_per_cell: int | None = None
    threads_per_cell: int | None = None
    timeout_min: float = 24 * 60
    slurm: SlurmOptions = field(default_factory=SlurmOptions)


@dataclass
class LoadedSpec:
    """A parsed spec with the raw ``class_path``/``init_args`` of its typed entries (what the cells receive)."""

    spec: SweepSpec
    missing_configs: list[dict[str, Any]]
    eval_configs: list[dict[str, Any]] | None
    source: str = ""


# ------------------------------------------------------------------------------------------------------- cells
@dataclass
class Cell:
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
    cells: list[Cell]
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


def _fmt(x: float) -> str:
    return f"{float(x):g}"


def missing_label(spec: MissingnessSpec) -> str:
    """Readable name of a training missingness spec in cell ids (``bernoulli0.5``, ``fixed-image``, ...)."""
    from mmbench.masks import (
        BernoulliMissing,
        FixedPattern,
        PatternDistribution,
        ShaSpecCodeSampler,
        WarmupThen,
    )

    if isinstance(spec, BernoulliMissing):
        if isinstance(spec.rate, dict):
            body = "-".join(f"{k}{_fmt(v)}" for k, v in sorted(spec.rate.items()))
            label = f"bernoulli-{body}"
        else:
            label = f"bernoulli{_fmt(spec.rate)}"
        if spec.min_present != 1:
            label += f"-min{spec.min_present}"
    elif isinstance(spec, FixedPattern):
        label = "fixed-" + "+".join(spec.observed)
    elif isinstance(spec, PatternDistribution):
        label = "patterns"
    elif isinstance(spec, ShaSpecCodeSampler):
        label = "shaspec-code"
    elif isinstance(spec, WarmupThen):
        label = f"warmup{spec.warmup_epochs}-{missing_label(spec.then)}"
    else:
        label = type(spec).__name__.lower()
    return _slug(label)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _yaml_content(path: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise MMBenchError(f"config file {path} does not exist")
    try:
        return yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise MMBenchError(f"config file {path} is not valid YAML: {e}") from None


def _arg(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _flatten(prefix: str, d: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and "class_path" not in v and v:
            yield from _flatten(key, v)
        else:
            yield key, v


# ------------------------------------------------------------------------------------------------ spec loading
def _parser() -> Any:
    from jsonargparse import ActionConfigFile, ArgumentParser

    p = ArgumentParser(
        prog="mmbench sweep",
        description=(
            "Run a grid of `mmbench fit` cells from a sweep spec. Every spec key can be overridden on the command "
            "line (e.g. --seeds=[1] --executor=slurm --slurm.partition=gpu; a dict such as --trainer replaces the "
            "spec's); arguments after `--` are added to every cell's `mmbench fit` command and hash "
            "(e.g. -- --trainer.max_epochs=1)."
        ),
        exit_on_error=False,
        default_env=False,
    )
    p.add_argument("-c", "--config", action=ActionConfigFile, help="sweep spec YAML (experiments/sweeps/NAME.yaml)")
    p.add_class_arguments(SweepSpec)
    p.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true", help="print the grid and status only")
    p.add_argument("--num_seeds", type=int | None, default=None, help="use the first N seeds (more: continue counting)")
    p.add_argument(
        "--check", type=bool, default=True, help="instantiate every method × dataset pair before running (recommended)"
    )
    p.add_argument("--wait", type=bool, default=True, help="slurm: wait for the array job and report (false: submit)")
    return p


def _plain(obj: Any) -> Any:
    """Turn jsonargparse ``Namespace`` objects (also nested in lists/dicts) into plain dicts and lists."""
    if hasattr(obj, "as_dict"):
        return _plain(obj.as_dict())
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def load_spec(args: Sequence[str]) -> tuple[LoadedSpec, dict[str, Any]]:
    """Parse ``mmbench sweep`` arguments (without the part after ``--``).

    Returns:
        ``(loaded spec, runner options)`` where the options are ``dry_run``, ``num_seeds``, ``check`` and ``wait``.
    """
    import argparse

    parser = _parser()
    try:
        cfg = parser.parse_args(list(args))
    except argparse.ArgumentError as e:
        raise MMBenchError(f"sweep spec: {e}") from None
    raw = _plain(cfg)
    try:
        init = parser.instantiate(cfg) if hasattr(parser, "instantiate") else parser.instantiate_classes(cfg)
    except (ValueError, TypeError) as e:
        raise MMBenchError(f"sweep spec: {e}") from None
    values = {f.name: init[f.name] for f in dataclasses.fields(SweepSpec)}
    spec = SweepSpec(**values)
    options = {k: raw[k] for k in ("dry_run", "num_seeds", "check", "wait")}
    source = ", ".join(str(c) for c in raw.get("config") or [])
    return LoadedSpec(spec, list(raw.get("missing") or []), raw.get("eval_protocols"), source), options


# --------------------------------------------------------------------------------------------------- expansion
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


def _method_entries(spec: SweepSpec) -> tuple[list[MethodEntry], bool]:
    import mmbench.methods  # noqa: F401  (registers the methods)
    from mmbench.registry import METHODS

    for name in spec.exclude_methods:
        if name not in METHODS:
            raise UnknownNameError(
                f"sweep {spec.name!r}: exclude_methods: " + unknown_name_message("method", name, METHODS.names())
            )
    if spec.methods == "all":
        return [MethodEntry(name=n) for n in METHODS.names() if n not in spec.exclude_methods], True
    entries = [MethodEntry(name=m) if isinstance(m, str) else m for m in spec.methods]
    for e in entries:
        if e.name not in METHODS:
            raise UnknownNameError(
                f"sweep {spec.name!r}: methods: " + unknown_name_message("method", e.name, METHODS.names())
            )
    return [e for e in entries if e.name not in spec.exclude_methods], False


def _resolve_method(spec: SweepSpec, entry: MethodEntry, ds: _Dataset) -> _Method:
    from mmbench.registry import METHODS

    cls = METHODS.get(entry.name)
    config = entry.config
    if config is None and spec.method_configs:
        for stem in dict.fromkeys([f"{entry.name}{ds.method_suffix}", entry.name]):
            candidate = Path(spec.method_configs) / f"{stem}.yaml"
            if candidate.is_file():
                config = candidate.as_posix()
                break
    if config is not None:
        content = _yaml_content(config)
        model = content.get("model") if isinstance(content, dict) else None
        class_path = model.get("class_path") if isinstance(model, dict) else None
        if isinstance(class_path, str) and class_path not in _class_names(cls):
            raise MMBenchError(
                f"sweep {spec.name!r}: {config}: model.class_path {class_path!r} is not method {entry.name!r} "
                f"({_public_path(cls)})"
            )
    label = _slug(entry.label or entry.name)
    return _Method(entry.name, label, _public_path(cls), config, dict(entry.overrides))


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


def _owned_args(spec: SweepSpec, cell: Cell) -> list[str]:
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
    data = _yaml_content(ds.config) if Path(ds.config).is_file() else {"unavailable": ds.config}
    return {
        "v": HASH_VERSION,
        "dataset": {"content": data, "overrides": ds.overrides},
        "method": {
            "name": m.name,
            "class_path": m.class_path,
            "content": _yaml_content(m.config) if m.config else None,
            "overrides": m.overrides,
        },
        "missing": miss.config,
        "eval_protocols": loaded.eval_configs,
        "seed": seed,
        "vary_mask_seed": spec.vary_mask_seed,
        "trainer_configs": [_yaml_content(c) for c in spec.trainer_configs],
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

    content = _yaml_content(ds.config)
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


def _dataset_unavailable(ds: _Dataset) -> str | None:
    """Why ``ds`` cannot be used yet (missing YAML, class that does not import), or ``None``."""
    import importlib

    import mmbench.data  # noqa: F401  (registers the data modules)
    from mmbench.registry import DATASETS

    if not Path(ds.config).is_file():
        return f"{ds.config} does not exist"
    content = _yaml_content(ds.config)
    section = content.get("data") if isinstance(content, dict) else None
    class_path = section.get("class_path") if isinstance(section, dict) else None
    if not isinstance(class_path, str):
        return f"{ds.config} has no data.class_path"
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
    from mmbench.cli import cli_main

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
) -> Grid:
    """Expand a spec into cells, checking every method × dataset pair before anything runs.

    Args:
        loaded: the parsed spec.
        num_seeds: use the first ``num_seeds`` seeds (``None`` = all).
        extra_args: more ``mmbench fit`` arguments for every cell.
        check: instantiate each method × dataset pair (and each missingness spec) through the CLI on CPU.
        allow_unavailable: keep cells of datasets whose YAML or class does not exist yet (dry-run) instead of
            raising; they carry a ``note``.

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
    entries, is_all = _method_entries(spec)
    if not entries:
        raise MMBenchError(f"sweep {spec.name!r} has an empty grid: no methods (after exclude_methods)")
    for c in spec.trainer_configs:
        _yaml_content(c)

    root = Path(spec.output) / spec.name
    cells: list[Cell] = []
    notes: list[str] = []
    errors: list[str] = []
    for ds in datasets:
        problem = _dataset_unavailable(ds)
        if problem is not None:
            if not allow_unavailable:
                raise MMBenchError(f"sweep {spec.name!r}: dataset {ds.label!r} is not available: {problem}")
            notes.append(f"dataset {ds.label}: not available ({problem}); its cells are listed unchecked")
        methods: list[_Method] = []
        dm_facts: dict[str, str] = {}
        if problem is None:
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
            m = _resolve_method(spec, entry, ds)
            if problem is None:
                from mmbench.registry import METHODS

                supported = tuple(str(t) for t in getattr(METHODS.get(m.name), "supported_tasks", ()))
                if supported and dm_facts["task"] not in supported:
                    why = f"supports {', '.join(supported)}, not {dm_facts['task']}"
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
            notes.append(f"dataset {ds.label}: no registered method supports task {dm_facts['task']}")
        for m in methods:
            for miss in axis:
                for seed in seeds:
                    definition = _definition(spec, loaded, ds, m, miss, seed, extra_args)
                    digest = hashlib.sha256(_canonical(definition).encode()).hexdigest()
                    cell_id = f"{ds.label}__{m.label}__{miss.label}__seed{seed}__{digest[:8]}"
                    expect = {"seed": str(seed), "method": m.name}
                    if "dataset" in dm_facts:
                        expect["dataset"] = dm_facts["dataset"]
                    cell = Cell(
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


# ------------------------------------------------------------------------------------------------ cell status
class CellLock:
    """Exclusive, non-blocking ``flock`` on ``<cell>/.lock`` (released by the kernel when the process dies)."""

    def __init__(self, cell_dir: Path) -> None:
        self.path = Path(cell_dir) / LOCK
        self.fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; ``False`` when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        self.fd = fd
        return True

    def release(self) -> None:
        """Drop the lock (the file stays: deleting it would let two processes lock different files)."""
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def cell_status(cell_dir: Path) -> str:
    """``complete``, ``running`` (locked by a process), ``failed``, ``incomplete`` (partial outputs) or ``pending``."""
    cell_dir = Path(cell_dir)
    if (cell_dir / COMPLETE).is_file():
        return "complete"
    if not cell_dir.is_dir():
        return "pending"
    lock = CellLock(cell_dir)
    if (cell_dir / LOCK).exists():
        if not lock.acquire():
            return "running"
        lock.release()
    if (cell_dir / FAILED).is_file():
        return "failed"
    return "incomplete" if any(p.name != LOCK for p in cell_dir.iterdir()) else "pending"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _clean(cell_dir: Path) -> None:
    import shutil

    for p in cell_dir.iterdir():
        if p.name == LOCK:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def validate_results(path: Path, expect: dict[str, str]) -> int:
    """Check a cell's results file; return its number of rows.

    Checks: the header is exactly ``results.RESULT_COLUMNS``; at least one row; every row names a protocol,
    pattern and metric, has a numeric (or empty = NaN) value, and carries the cell's ``seed`` (and ``method`` /
    ``dataset`` when known).

    Raises:
        MMBenchError: what is wrong.
    """
    from mmbench.results import RESULT_COLUMNS

    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != list(RESULT_COLUMNS):
            raise MMBenchError(f"{path}: columns {header} are not results.RESULT_COLUMNS")
        rows = [dict(zip(header, r, strict=False)) for r in reader]
    if not rows:
        raise MMBenchError(f"{path}: no result rows")
    for i, row in enumerate(rows, start=2):
        if len(row) != len(RESULT_COLUMNS):
            raise MMBenchError(f"{path}:{i}: {len(row)} fields, expected {len(RESULT_COLUMNS)}")
        for key in ("eval_protocol", "pattern", "metric"):
            if not row[key]:
                raise MMBenchError(f"{path}:{i}: empty {key}")
        if row["value"] != "":
            try:
                float(row["value"])
            except ValueError:
                raise MMBenchError(f"{path}:{i}: value {row['value']!r} is not a number") from None
        for key, want in expect.items():
            if row[key] != want:
                raise MMBenchError(f"{path}:{i}: {key} is {row[key]!r}, expected {want!r}")
    return len(rows)


# ---------------------------------------------------------------------------------------------- cell execution
def _task(cell: Cell, cwd: Path, threads: int | None, wandb: bool, executor: str) -> dict[str, Any]:
    return {
        "sweep": cell.sweep,
        "cell_id": cell.cell_id,
        "cell_dir": cell.cell_dir.as_posix(),
        "cwd": str(cwd),
        "argv": cell.argv,
        "threads": threads,
        "wandb": wandb,
        "executor": executor,
        "expect": cell.expect,
        "cell": {
            "sweep": cell.sweep,
            "cell_id": cell.cell_id,
            "hash": cell.digest,
            "dataset": cell.dataset,
            "method": cell.method,
            "method_name": cell.method_name,
            "missing": cell.missing,
            "seed": cell.seed,
            "argv": ["fit", *cell.argv],
            "definition": cell.definition,
        },
    }


class _Terminated(SystemExit):
    """SIGTERM reached a cell process: stop, never mark the cell complete."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated(128 + signum)


def _parent_death_signal() -> None:
    """Linux: get SIGTERM when the submitit task that started this process dies (no orphaned cells)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _process_age() -> float | None:
    """Seconds since this process started (Linux), to measure interpreter start and imports."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
        return time.time() - (boot + start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _run_fit(argv: list[str]) -> None:
    """``mmbench fit argv`` in this process (``sys.argv`` untouched: DDP re-launches it); one W&B run per call."""
    from mmbench.cli import cli_main

    try:
        with warnings.catch_warnings():
            # the cell dir holds .lock and cell.json; a local cell does not want srun
            warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
            warnings.filterwarnings("ignore", message=".*`srun` command is available.*")
            cli_main(["fit", *argv])
    finally:
        if "wandb" in sys.modules:  # one W&B run per cell, also in-process
            wandb = sys.modules["wandb"]
            if getattr(wandb, "run", None) is not None:
                wandb.finish()


def execute_cell(task: dict[str, Any], *, isolated: bool) -> dict[str, Any]:
    """Run one cell: lock, skip if complete, clean, ``fit`` + ``test``, validate, promote ``results.csv``, mark.

    Args:
        task: what :func:`_task` builds.
        isolated: this process exists for the cell (``mmbench sweep _cell``): send its output to ``fit.log``.
            ``False`` (debug executor): run in the caller's process and re-raise nothing but interrupts.

    Returns:
        The outcome: ``{"cell_id", "status": complete|skipped|busy|failed, "seconds", "rows", "error"}``.
    """
    start = time.time()
    cell_dir = Path(task["cell_dir"])
    outcome: dict[str, Any] = {"cell_id": task["cell_id"], "status": "failed", "seconds": 0.0, "rows": 0, "error": ""}
    lock = CellLock(cell_dir)
    if not lock.acquire():
        outcome["status"] = "busy"
        return outcome
    saved_threads: int | None = None
    try:
        if (cell_dir / COMPLETE).is_file():
            outcome["status"] = "skipped"
            return outcome
        _clean(cell_dir)
        _write_atomic(cell_dir / CELL_JSON, json.dumps(task["cell"], indent=1, default=str) + "\n")
        if task.get("wandb"):
            os.environ.setdefault("WANDB_MODE", "offline")
            os.environ.setdefault("WANDB_SILENT", "true")
        if isolated:
            logf = os.open(cell_dir / FIT_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(logf, 1)
            os.dup2(logf, 2)
            os.close(logf)
        if task.get("threads"):
            import torch

            saved_threads = torch.get_num_threads()
            torch.set_num_threads(int(task["threads"]))
        fit_start = time.time()
        try:
            _run_fit(list(task["argv"]))
        except _Terminated:
            raise
        except (Exception, SystemExit) as e:
            if isinstance(e, SystemExit) and e.code in (0, None):
                raise MMBenchError("`mmbench fit` exited without running") from None
            traceback.print_exc()  # into fit.log (subprocess cells) or the console (debug)
            detail = f"exit status {e.code}" if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
            raise MMBenchError(f"fit failed ({detail})") from None
        fit_seconds = time.time() - fit_start
        partial = cell_dir / PARTIAL_RESULTS
        if not partial.is_file():
            raise MMBenchError(f"fit finished without writing {PARTIAL_RESULTS} (interrupted, or test did not run)")
        rows = validate_results(partial, task["expect"])
        digest = hashlib.sha256(partial.read_bytes()).hexdigest()
        os.replace(partial, cell_dir / RESULTS)
        marker = {
            "cell_id": task["cell_id"],
            "sweep": task["sweep"],
            "rows": rows,
            "results_sha256": digest,
            "seconds": round(time.time() - start, 3),
            "fit_seconds": round(fit_seconds, 3),
            "process_seconds_before_cell": task.get("_process_age"),
            "host": socket.gethostname(),
            "executor": task.get("executor", ""),
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        _write_atomic(cell_dir / COMPLETE, json.dumps(marker, indent=1) + "\n")
        outcome.update(status="complete", rows=rows)
    except MMBenchError as e:
        outcome["error"] = str(e)
        tail = ""
        if (cell_dir / FIT_LOG).is_file():
            tail = (cell_dir / FIT_LOG).read_text(errors="replace")[-4000:]
        failed = {"cell_id": task["cell_id"], "error": str(e), "log_tail": tail}
        with contextlib.suppress(OSError):
            _write_atomic(cell_dir / FAILED, json.dumps(failed, indent=1) + "\n")
        if isolated:
            print(f"mmbench sweep: cell {task['cell_id']} failed: {e}", file=sys.stderr)
    finally:
        if saved_threads is not None:
            import torch

            torch.set_num_threads(saved_threads)
        lock.release()
    outcome["seconds"] = round(time.time() - start, 3)
    return outcome


def _worker_rank() -> int:
    """Rank of this process when it is an extra DDP rank (Lightning-launched or a SLURM task), else 0."""
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if local > 0:
        return local
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        return int(os.environ.get("SLURM_PROCID", "0") or 0)
    return 0


def _cell_main(task_path: str) -> None:
    """``mmbench sweep _cell TASK.json``: the body of a subprocess cell (rank 0), or a bare fit (other ranks)."""
    age = _process_age()
    task = json.loads(Path(task_path).read_text())
    task["_process_age"] = round(age, 3) if age is not None else None
    os.chdir(task["cwd"])
    _parent_death_signal()
    # DDP re-launches `sys.argv`: keep this command there so extra ranks run the same cell
    sys.argv = [sys.argv[0], "sweep", "_cell", task_path]
    if _worker_rank() > 0:
        if not (Path(task["cell_dir"]) / COMPLETE).is_file():
            _run_fit(list(task["argv"]))
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    out = os.fdopen(os.dup(1), "w")
    outcome = execute_cell(task, isolated=True)
    print(OUTCOME_PREFIX + json.dumps(outcome), file=out, flush=True)
    if outcome["status"] == "failed":
        sys.exit(1)


# -------------------------------------------------------------------------------------------------- executors
def _cell_command(task_path: Path) -> list[str]:
    return [sys.executable, "-m", "mmbench", "sweep", "_cell", str(task_path)]


def _parse_outcome(stdout: str, cell: Cell) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(OUTCOME_PREFIX):
            return dict(json.loads(line[len(OUTCOME_PREFIX) :]))
    return _outcome_from_disk(cell, "no outcome reported")


def _outcome_from_disk(cell: Cell, error: str) -> dict[str, Any]:
    status = cell_status(cell.cell_dir)
    out: dict[str, Any] = {"cell_id": cell.cell_id, "status": "complete" if status == "complete" else "failed"}
    if out["status"] == "failed":
        failed = cell.cell_dir / FAILED
        detail = ""
        if failed.is_file():
            with contextlib.suppress(ValueError, OSError):
                detail = json.loads(failed.read_text()).get("error", "")
        out["error"] = detail or error
    return out


def _gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:
        return 0


def _uses_gpu(spec: SweepSpec) -> bool:
    acc = str(spec.trainer.get("accelerator", "auto")).lower()
    return acc not in ("cpu",)


def _gpus_per_cell(spec: SweepSpec, gpus_available: bool) -> int:
    if spec.gpus_per_cell is not None:
        return max(0, spec.gpus_per_cell)
    if not gpus_available or not _uses_gpu(spec):
        return 0
    devices = spec.trainer.get("devices", 1)
    return devices if isinstance(devices, int) and devices > 0 else 1


def run_local(grid: Grid, tasks: dict[str, Path], parallel: int | None) -> list[dict[str, Any]]:
    """Run cells with ``submitit.LocalExecutor``, ``parallel`` at a time, each GPU cell on its own GPU(s)."""
    import submitit
    from submitit.core.utils import CommandFunction

    spec = grid.spec
    n_gpus = _gpu_count() if _uses_gpu(spec) else 0
    per_cell = _gpus_per_cell(spec, n_gpus > 0)
    if per_cell > n_gpus:
        raise MMBenchError(f"each cell needs {per_cell} GPU(s) but {n_gpus} are visible")
    slots = parallel or (n_gpus // per_cell if per_cell else 1)
    executor = submitit.LocalExecutor(folder=grid.root / ".submitit")
    free_gpus = list(range(n_gpus))
    pending = [c for c in grid.cells if c.cell_id in tasks]
    running: dict[Any, tuple[Cell, list[int], float]] = {}
    outcomes: list[dict[str, Any]] = []
    try:
        while pending or running:
            while pending and len(running) < slots and len(free_gpus) >= per_cell:
                cell = pending.pop(0)
                gpus, free_gpus = free_gpus[:per_cell], free_gpus[per_cell:]
                executor.update_parameters(
                    timeout_min=spec.timeout_min, gpus_per_node=len(gpus), visible_gpus=tuple(gpus), tasks_per_node=1
                )
                job = executor.submit(CommandFunction(_cell_command(tasks[cell.cell_id]), verbose=False))
                running[job] = (cell, gpus, time.time())
                print(f"  started   {cell.cell_id}" + (f" (GPU {','.join(map(str, gpus))})" if gpus else ""))
            time.sleep(0.2)
            for job in [j for j in running if j.done()]:
                cell, gpus, submitted = running.pop(job)
                free_gpus = sorted(free_gpus + gpus)
                outcomes.append(_collect(job, cell, time.time() - submitted))
    except BaseException:
        # stop the running cells: SIGTERM to each cell process (its pid is in the lock it holds; submitit's task
        # process bypasses SIGTERM and its controller may have inherited an ignored SIGINT), then cancel the jobs
        for job, (cell, _, _) in running.items():
            _terminate_cell(cell.cell_dir)
            with contextlib.suppress(Exception):
                job.cancel()
        deadline = time.time() + 30
        while any(not j.done() for j in running) and time.time() < deadline:
            time.sleep(0.2)
        for job, (cell, _, _) in running.items():  # stuck in a C call (e.g. a DDP rendezvous): no handler runs
            if not job.done():
                _terminate_cell(cell.cell_dir, signal.SIGKILL)
        raise
    return outcomes


def _terminate_cell(cell_dir: Path, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to the process that holds ``cell_dir``'s lock, when it runs on this host."""
    with contextlib.suppress(OSError, ValueError):
        host, pid = (cell_dir / LOCK).read_text().split()
        if host == socket.gethostname() and cell_status(cell_dir) == "running":
            os.kill(int(pid), sig)


def _collect(job: Any, cell: Cell, job_seconds: float | None = None) -> dict[str, Any]:
    try:
        outcome = _parse_outcome(str(job.result()), cell)
    except Exception as e:
        outcome = _outcome_from_disk(cell, str(e).strip().splitlines()[-1] if str(e).strip() else repr(e))
    if job_seconds is not None:
        outcome["job_seconds"] = round(job_seconds, 3)  # submit → done, as the sweep process saw it
    _print_outcome(outcome)
    return outcome


def _print_outcome(outcome: dict[str, Any]) -> None:
    status = outcome.get("status", "?")
    extra = f"  {outcome['error']}" if status == "failed" and outcome.get("error") else ""
    secs = f" ({outcome['seconds']:.0f} s)" if outcome.get("seconds") else ""
    print(f"  {status:<9} {outcome['cell_id']}{secs}{extra}", flush=True)


def run_slurm(grid: Grid, tasks: dict[str, Path], parallel: int | None, wait: bool) -> list[dict[str, Any]]:
    """Submit the cells as one SLURM array job through ``submitit.SlurmExecutor``; optionally wait for it."""
    import submitit
    from submitit.core.utils import CommandFunction

    spec = grid.spec
    opts = spec.slurm
    per_cell = _gpus_per_cell(spec, _uses_gpu(spec) and str(spec.trainer.get("accelerator", "")) in ("gpu", "cuda"))
    executor = submitit.SlurmExecutor(folder=grid.root / ".submitit")
    params: dict[str, Any] = {
        "job_name": f"mmbench-{spec.name}",
        "time": int(opts.time_min),
        "nodes": 1,
        "ntasks_per_node": max(1, per_cell),
        "cpus_per_task": opts.cpus_per_cell,
        "array_parallelism": parallel or 256,
        "stderr_to_stdout": True,
    }
    if per_cell:
        params["gpus_per_node"] = per_cell
    for key, value in (
        ("partition", opts.partition),
        ("account", opts.account),
        ("qos", opts.qos),
        ("constraint", opts.constraint),
    ):
        if value:
            params[key] = value
    if opts.mem_gb:
        params["mem"] = f"{int(opts.mem_gb * 1024)}MB"
    if opts.setup:
        params["setup"] = list(opts.setup)
    if opts.additional:
        params["additional_parameters"] = dict(opts.additional)
    executor.update_parameters(**params)
    cells = [c for c in grid.cells if c.cell_id in tasks]
    with executor.batch():
        jobs = [executor.submit(CommandFunction(_cell_command(tasks[c.cell_id]), verbose=False)) for c in cells]
    array_id = jobs[0].job_id.split("_")[0] if jobs else "?"
    print(f"  submitted SLURM array job {array_id} ({len(jobs)} cells, logs in {grid.root / '.submitit'})")
    if not wait:
        return [{"cell_id": c.cell_id, "status": "submitted"} for c in cells]
    outcomes: list[dict[str, Any]] = []
    remaining = dict(zip(jobs, cells, strict=True))
    last_queue_check, gone_since = time.time(), None
    try:
        while remaining:
            time.sleep(1.0)
            # a finished array task leaves its result pickle (also on error); no sacct needed
            for job in [j for j in remaining if j.paths.result_pickle.exists()]:
                outcomes.append(_collect(job, remaining.pop(job)))
            if remaining and time.time() - last_queue_check > 10:
                # killed, cancelled or timed-out tasks leave no pickle: once squeue no longer lists the array
                # (and a grace period has passed for the shared file system), read their status from disk
                last_queue_check = time.time()
                queued = subprocess.run(
                    ["squeue", "-h", "-j", array_id, "-o", "%i"], capture_output=True, text=True, check=False
                )
                if queued.returncode == 0 and not queued.stdout.strip():
                    gone_since = gone_since or time.time()
                    if time.time() - gone_since > 60:
                        for job, cell in list(remaining.items()):
                            outcomes.append(_outcome_from_disk(cell, "array task left the queue without a result"))
                            _print_outcome(outcomes[-1])
                            remaining.pop(job)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; the array job keeps running (scancel {array_id} to stop it). Re-run to resume.")
        raise
    return outcomes


def run_debug(grid: Grid, tasks: dict[str, Path]) -> list[dict[str, Any]]:
    """Run the cells one after another in this process (no isolation; for tests and debugging)."""
    outcomes = []
    for cell in grid.cells:
        if cell.cell_id not in tasks:
            continue
        task = json.loads(tasks[cell.cell_id].read_text())
        outcome = execute_cell(task, isolated=False)
        _print_outcome(outcome)
        outcomes.append(outcome)
    return outcomes


def _threads(spec: SweepSpec, executor: str, parallel: int | None) -> int | None:
    if spec.threads_per_cell is not None:
        return spec.threads_per_cell
    if executor == "slurm":
        return spec.slurm.cpus_per_cell
    if executor == "local" and parallel and parallel > 1:
        return max(1, (os.cpu_count() or 1) // parallel)
    return None


def run_grid(
    grid: Grid, *, executor: str | None = None, parallel: int | None = None, wait: bool = True
) -> list[dict[str, Any]]:
    """Run every cell of ``grid`` that is not complete; write ``grid.csv``; return the outcomes.

    Raises:
        MMBenchError: some cells failed (after all cells were tried).
    """
    spec = grid.spec
    executor = executor or spec.executor
    parallel = parallel if parallel is not None else spec.parallel
    if parallel is not None and parallel < 1:
        raise MMBenchError(f"parallel must be >= 1, got {parallel}")
    if executor not in ("local", "slurm", "debug"):
        raise MMBenchError(f"unknown executor {executor!r}; expected local, slurm or debug")
    devices = spec.trainer.get("devices", 1)
    if executor == "debug" and (
        (isinstance(devices, int) and devices > 1) or (isinstance(devices, list) and len(devices) > 1)
    ):
        raise MMBenchError("multi-device cells need their own process: use --executor=local or slurm, not debug")
    grid.root.mkdir(parents=True, exist_ok=True)
    _write_grid_csv(grid)
    cwd = Path.cwd()
    task_dir = grid.root / ".tasks"
    task_dir.mkdir(exist_ok=True)
    threads = _threads(spec, executor, parallel)
    tasks: dict[str, Path] = {}
    skipped = 0
    for cell in grid.cells:
        status = cell_status(cell.cell_dir)
        if status == "complete":
            skipped += 1
            continue
        if status == "running":
            print(f"  running   {cell.cell_id} (locked by another process; skipped)")
            continue
        path = (task_dir / f"{cell.cell_id}.json").resolve()
        _write_atomic(path, json.dumps(_task(cell, cwd, threads, spec.wandb, executor), indent=1) + "\n")
        tasks[cell.cell_id] = path
    print(
        f"sweep {spec.name}: {len(grid.cells)} cells, {skipped} complete, {len(tasks)} to run "
        f"({executor}{f', {parallel} at a time' if parallel else ''}) → {grid.root}",
        flush=True,
    )
    if not tasks:
        return []
    if spec.wandb:
        os.environ.setdefault("WANDB_MODE", "offline")
    try:
        outcomes = _execute(grid, tasks, executor, parallel, wait)
    except KeyboardInterrupt:
        raise MMBenchError(
            f"sweep {spec.name} interrupted; running cells were stopped (no COMPLETE); re-run the same command to "
            "resume"
        ) from None
    failed = [o for o in outcomes if o.get("status") == "failed"]
    done = sum(o.get("status") in ("complete", "skipped") for o in outcomes) + skipped
    print(f"sweep {spec.name}: {done}/{len(grid.cells)} complete, {len(failed)} failed", flush=True)
    if failed:
        lines = "\n".join(f"  {o['cell_id']}: {o.get('error', '')}" for o in failed)
        raise MMBenchError(
            f"{len(failed)} of {len(grid.cells)} cells failed (see <cell>/fit.log and <cell>/FAILED; "
            f"re-run to retry them):\n{lines}"
        )
    return outcomes


def _execute(
    grid: Grid, tasks: dict[str, Path], executor: str, parallel: int | None, wait: bool
) -> list[dict[str, Any]]:
    if executor == "debug":
        return run_debug(grid, tasks)
    if executor == "local":
        return _sigterm_as_interrupt(lambda: run_local(grid, tasks, parallel))
    return run_slurm(grid, tasks, parallel, wait)


def _sigterm_as_interrupt(fn: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Turn SIGTERM into KeyboardInterrupt while ``fn`` runs, so that running local cells get cancelled."""
    import threading

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    is_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)
    if is_main:
        signal.signal(signal.SIGTERM, handler)
    try:
        return fn()
    finally:
        if is_main:
            signal.signal(signal.SIGTERM, previous)


def _write_grid_csv(grid: Grid) -> None:
    cols = ["cell_id", "dataset", "method", "method_name", "missing", "seed", "hash", "cell_dir"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for c in grid.cells:
        w.writerow([c.cell_id, c.dataset, c.method, c.method_name, c.missing, c.seed, c.digest, c.cell_dir.as_posix()])
    _write_atomic(grid.root / "grid.csv", buf.getvalue())


def format_grid(grid: Grid) -> str:
    """The grid with each cell's status, as printed by ``--dry-run``."""
    statuses = [(cell_status(c.cell_dir) if not c.note else "unavailable", c) for c in grid.cells]
    n = {k: sum(1 for s, _ in statuses if s == k) for k in dict.fromkeys(s for s, _ in statuses)}
    axes = {
        "datasets": len({c.dataset for c in grid.cells}),
        "methods": len({c.method for c in grid.cells}),
        "missing": len({c.missing for c in grid.cells}),
        "seeds": len({c.seed for c in grid.cells}),
    }
    head = " × ".join(f"{k} {v}" for k, v in axes.items())
    lines = [f"sweep {grid.spec.name}: {len(grid.cells)} cells ({head}) → {grid.root}"]
    lines += [f"  {s:<11} {c.cell_id}" for s, c in statuses]
    lines += [f"note: {note}" for note in grid.notes]
    lines.append("status: " + ", ".join(f"{v} {k}" for k, v in n.items()))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------- CLI
def cli(args: list[str]) -> list[dict[str, Any]] | Grid:
    """``mmbench sweep --config experiments/sweeps/NAME.yaml [--dry-run] [--executor E] [--parallel N] ...``.

    Returns the outcomes of the cells that ran (or the grid with ``--dry-run``).
    """
    args = list(args)
    if args[:1] == ["_cell"]:
        if len(args) != 2:
            raise MMBenchError("usage: mmbench sweep _cell TASK.json")
        _cell_main(args[1])
        return []
    extra: list[str] = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1 :]
    loaded, options = load_spec(args)
    grid = expand(
        loaded,
        num_seeds=options["num_seeds"],
        extra_args=extra,
        check=options["check"],
        allow_unavailable=options["dry_run"],
    )
    if options["dry_run"]:
        print(format_grid(grid))
        return grid
    return run_grid(grid, wait=options["wait"])
