"""The sweep spec: typed grid entries (:class:`SweepSpec`) and their parsing from YAML and the command line."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mmbench.errors import MMBenchError, summarize_parser_error
from mmbench.masks import EvalProtocol, MissingnessSpec

__all__ = ["DatasetEntry", "LoadedSpec", "MethodEntry", "SlurmOptions", "SweepSpec", "load_spec"]


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
        allow_abbrev=False,
        default_env=False,
    )
    p.add_argument("-c", "--config", action=ActionConfigFile, help="sweep spec YAML (experiments/sweeps/NAME.yaml)")
    p.add_class_arguments(SweepSpec)
    p.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true", help="print the grid and status only")
    p.add_argument("--num_seeds", type=int | None, default=None, help="use the first N seeds (more: continue counting)")
    p.add_argument(
        "--check",
        type=bool | None,
        default=None,
        help=(
            "instantiate every method × dataset pair before running (default: true for a run; false for --dry-run, "
            "which then reads the registries from source and imports no Lightning)"
        ),
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


def _spec_files(args: Sequence[str]) -> str:
    """`` <file>`` of the ``--config`` arguments (for messages), or ``""``."""
    args = list(args)
    files = [a.split("=", 1)[1] for a in args if a.startswith(("--config=", "-c="))]
    files += [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--config", "-c")]
    return f" {', '.join(files)}" if files else ""


def load_spec(args: Sequence[str]) -> tuple[LoadedSpec, dict[str, Any]]:
    """Parse ``mmbench sweep`` arguments (without the part after ``--``).

    Returns:
        ``(loaded spec, runner options)`` where the options are ``dry_run``, ``num_seeds``, ``check`` (``None``
        when not given: on for a run, off for a dry-run) and ``wait``.
    """
    import argparse

    from mmbench.registry import install_slug_resolution

    install_slug_resolution()
    parser = _parser()
    where = _spec_files(args)
    try:
        cfg = parser.parse_args(list(args))
    except argparse.ArgumentError as e:
        raise MMBenchError(f"sweep spec{where}: {summarize_parser_error(str(e))}") from None
    raw = _plain(cfg)
    try:
        init = parser.instantiate(cfg) if hasattr(parser, "instantiate") else parser.instantiate_classes(cfg)
    except (ValueError, TypeError) as e:
        raise MMBenchError(f"sweep spec{where}: {summarize_parser_error(str(e))}") from None
    values = {f.name: init[f.name] for f in dataclasses.fields(SweepSpec)}
    spec = SweepSpec(**values)
    options = {k: raw[k] for k in ("dry_run", "num_seeds", "check", "wait")}
    source = ", ".join(str(c) for c in raw.get("config") or [])
    return LoadedSpec(spec, list(raw.get("missing") or []), raw.get("eval_protocols"), source), options
