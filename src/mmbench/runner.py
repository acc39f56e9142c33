"""The LightningCLI runner: ``mmbench fit|validate|test|predict``.

``MMBenchCLI`` is LightningCLI in subclass mode for method and data, with the data facts linked into the method,
``results.csv`` after ``test`` and test-after-fit. ``cli_main(args)`` is the single entry point for the console
script (through ``mmbench.cli.main``), the tests and the sweep runner (``mmbench.sweep``), which is why it lives
apart from the command dispatcher.

What the runner guarantees besides LightningCLI's behaviour:

* no argument is abbreviated (``--trainer.max_epoch`` is an error, not ``max_epochs``), and ``int | float``
  trainer fields keep integers integers (``limit_train_batches=1`` is one batch, not ``1.0`` = all of them);
* registry slugs are accepted wherever a class is (``--model late_fusion``, ``class_path: late_fusion`` in YAML);
* a parse or construction error is one :class:`~mmbench.errors.MMBenchError` line (no usage, no Namespace dump);
* ``--trainer.default_root_dir`` places the default loggers (those writing to ``runs``);
* a run never writes into a completed run dir (one with ``COMPLETE`` or ``results.csv``);
* a ``--ckpt_path`` is read with ``weights_only=True`` and refused when its method or data facts differ;
* W&B runs carry the whole resolved config, a name saying what ran, and the run dir; the run dir records the W&B
  run id (``wandb_run.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import (
    ArgsType,
    LightningArgumentParser,
    LightningCLI,
    LRSchedulerTypeTuple,
    LRSchedulerTypeUnion,
)
from torch.optim import Optimizer

import mmbench.data
import mmbench.methods  # noqa: F401  (registers methods for short names)
from mmbench.data.base import MultimodalDataModule
from mmbench.errors import MMBenchError, summarize_parser_error
from mmbench.methods.base import DEFAULT_LR, DEFAULT_WEIGHT_DECAY, MissingModalityMethod
from mmbench.predictions import PredictionsWriter
from mmbench.provenance import CKPT_METHOD_KEY, check_checkpoint, read_checkpoint
from mmbench.registry import DATASETS, METHODS, Registry, UnknownNameError, install_slug_resolution
from mmbench.registry import unknown_name_message as _unknown
from mmbench.results import ResultsWriter
from mmbench.safe_io import UnsafeFileError, mmbench_cause, untrusted_input_guard
from mmbench.schema import COMPLETE_MARKER, RESULTS_FILE
from mmbench.yamlfile import read_yaml

__all__ = ["DEFAULT_SAVE_DIR", "LINKED_FIELDS", "PARSER_KWARGS", "WANDB_RUN_FILE", "MMBenchCLI", "cli_main"]

LINKED_FIELDS = ("modalities", "input_shapes", "task", "num_classes")
DEFAULT_SAVE_DIR = "runs"
"""Where the default CSV logger writes; ``--trainer.default_root_dir`` replaces it in every logger that uses it."""
WANDB_RUN_FILE = "wandb_run.json"
"""Written into the run dir when a W&B logger is attached: the W&B run's id, name, project and directory."""
SUBCOMMANDS = ("fit", "validate", "test", "predict")
_STRICT = {"exit_on_error": False, "allow_abbrev": False}
PARSER_KWARGS: dict[str, Any] = {"default_env": False, **_STRICT, **{s: dict(_STRICT) for s in SUBCOMMANDS}}
"""Every parser (main and subcommands): no abbreviations, errors raised (then printed as one line), no env vars."""
_CKPT_KEYWORDS = ("best", "last", "hpc", "registry")

install_slug_resolution()


def _ints_before_floats(parser: LightningArgumentParser, prefix: str = "trainer.") -> list[str]:
    """Make every ``float | int`` union of ``prefix*`` arguments try ``int`` first; return the fixed keys.

    jsonargparse tries union subtypes in the declared order and ``float`` accepts ``1``, so Lightning's
    ``limit_train_batches: float | int | None`` turned ``1`` (one batch) into ``1.0`` (the whole epoch), from the
    command line, YAML and sweep specs alike. The fix is the order of the type hint at the parser.
    """
    from jsonargparse._typehints import ActionTypeHint, sort_unions_in_typehint

    fixed = []
    for action in parser._actions:
        if not (isinstance(action, ActionTypeHint) and str(action.dest).startswith(prefix)):
            continue
        hint = getattr(action, "_typehint", None)
        args = typing.get_args(hint)
        if (
            typing.get_origin(hint) is typing.Union
            and float in args
            and int in args
            and args.index(float) < args.index(int)
        ):
            ordered = (int, float, *(a for a in args if a not in (int, float)))
            action._typehint = sort_unions_in_typehint(typing.Union[ordered])  # noqa: UP007
            fixed.append(str(action.dest))
    return fixed


class _MethodStamp(Callback):
    """Records the method's class and registry name in every checkpoint (checked when the checkpoint is loaded)."""

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        cls = type(pl_module)
        checkpoint[CKPT_METHOD_KEY] = {
            "method_class": f"{cls.__module__}.{cls.__name__}",
            "method": str(getattr(pl_module, "registry_name", "") or cls.__name__),
        }


class MMBenchCLI(LightningCLI):
    """LightningCLI with mmbench's links, the results writer, test-after-fit and the checks listed above.

    ``--optimizer`` / ``--lr_scheduler`` (LightningCLI's own) choose the optimiser; the default is
    ``AdamW(lr=1e-3, weight_decay=0)``. A scheduler with an ``interval`` attribute of ``"step"`` (e.g.
    ``mmbench.methods.optim.PolyLR``) is stepped after every optimiser step, any other one once per epoch.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:  # noqa: D102
        for field in LINKED_FIELDS:
            parser.link_arguments(f"data.{field}", f"model.init_args.{field}", apply_on="instantiate")
        parser.add_optimizer_args((torch.optim.Optimizer,))
        parser.add_lr_scheduler_args(LRSchedulerTypeTuple)
        default = {"lr": DEFAULT_LR, "weight_decay": DEFAULT_WEIGHT_DECAY}
        parser.set_defaults({"optimizer": {"class_path": "torch.optim.AdamW", "init_args": default}})
        parser.add_lightning_class_args(ResultsWriter, "results")
        parser.add_lightning_class_args(PredictionsWriter, "predictions")
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="after `fit`, run `test` with the final weights in the same run dir (writes results.csv)",
        )
        _ints_before_floats(parser)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:  # noqa: D102
        # the arguments travel in `args` (LightningCLI warns when sys.argv has some too); empty sys.argv only while
        # parsing: DDP re-launches sys.argv for the other ranks later
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            super().parse_arguments(parser, args)
        except argparse.ArgumentError as e:
            raise _parse_error(e, args, parser) from None
        finally:
            sys.argv = argv

    @staticmethod
    def configure_optimizers(
        lightning_module: LightningModule, optimizer: Optimizer, lr_scheduler: LRSchedulerTypeUnion | None = None
    ) -> Any:
        """LightningCLI's optimiser/scheduler pair; the scheduler's ``interval`` attribute (default epoch) is kept."""
        out = LightningCLI.configure_optimizers(lightning_module, optimizer, lr_scheduler)
        interval = getattr(lr_scheduler, "interval", "epoch")
        if lr_scheduler is None or interval == "epoch":
            return out
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": lr_scheduler, "interval": interval}}

    def _add_configure_optimizers_method_to_model(self, subcommand: str | None) -> None:
        # the base class's own configure_optimizers (the same default) is meant to be replaced: no warning
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*configure_optimizers` will be overridden")
            super()._add_configure_optimizers_method_to_model(subcommand)

    def _parse_ckpt_path(self) -> None:
        """Read ``--ckpt_path`` safely and refuse a checkpoint of another method before LightningCLI uses it.

        LightningCLI re-parses the model config with the checkpoint's hyper-parameters, *including its class*: a
        ``--model=mean_fill`` run given a late-fusion checkpoint would silently test late fusion.
        """
        sub = self.config.get("subcommand")
        ckpt_path = self.config[sub].get("ckpt_path") if sub else None
        if ckpt_path and str(ckpt_path) not in _CKPT_KEYWORDS:
            ckpt = read_checkpoint(ckpt_path)
            meta = ckpt.get(CKPT_METHOD_KEY)
            hparams = ckpt.get("hyper_parameters") or {}
            trained = (meta.get("method_class") if isinstance(meta, dict) else None) or hparams.get("_class_path")
            model = self.config[sub].get("model")
            configured = model.get("class_path") if model is not None else None
            if trained and configured and _import(str(trained)) is not _import(str(configured)):
                raise MMBenchError(
                    f"checkpoint {ckpt_path} was trained as {trained}, but the config asks for {configured}; "
                    "give the matching method config (or --model) or another checkpoint"
                )
        super()._parse_ckpt_path()

    # ---------------------------------------------------------------------------------------------- before
    def before_instantiate_classes(self) -> None:  # noqa: D102
        cfg = self.config.get(str(self.subcommand), self.config) if self.subcommand else self.config
        root = cfg.get("trainer", {}).get("default_root_dir") if cfg.get("trainer") is not None else None
        if root:
            loggers = cfg.trainer.get("logger")
            for entry in loggers if isinstance(loggers, list) else [loggers]:
                init = getattr(entry, "init_args", None) if entry is not None else None
                if init is not None and init.get("save_dir") == DEFAULT_SAVE_DIR:
                    init["save_dir"] = str(root)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:  # noqa: D102
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.append(_MethodStamp())  # type: ignore[attr-defined]
        return trainer

    def _before_run(self) -> None:
        subcommand = str(self.subcommand)
        cfg = self.config[subcommand]
        run_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        for name in (COMPLETE_MARKER, RESULTS_FILE):
            if (run_dir / name).exists():
                raise MMBenchError(
                    f"run dir {run_dir} is complete (it holds {name}); a run never writes into a finished run dir: "
                    "remove it, or choose another logger save_dir/version"
                )
        ckpt_path = cfg.get("ckpt_path")
        callbacks = self.trainer.callbacks  # type: ignore[attr-defined]
        writer = next((cb for cb in callbacks if isinstance(cb, ResultsWriter)), None)
        if ckpt_path and str(ckpt_path) not in _CKPT_KEYWORDS:
            check_checkpoint(ckpt_path, self.model, self.datamodule)
            if writer is not None and writer.ckpt_selection == "last":  # the default: say that a file was given
                writer.ckpt_selection = "ckpt_path"
        elif ckpt_path and writer is not None and writer.ckpt_selection == "last":
            writer.ckpt_selection = str(ckpt_path)
        self._setup_wandb(subcommand, run_dir)

    def before_fit(self) -> None:  # noqa: D102
        self._before_run()

    def before_validate(self) -> None:  # noqa: D102
        self._before_run()

    def before_test(self) -> None:  # noqa: D102
        self._before_run()

    def before_predict(self) -> None:  # noqa: D102
        self._before_run()

    def _setup_wandb(self, subcommand: str, run_dir: Path) -> None:
        """Name the W&B run after what runs, give it the whole resolved config and the run dir; record its id."""
        loggers = [lg for lg in self.trainer.loggers if type(lg).__name__ == "WandbLogger"]
        if not loggers or not self.trainer.is_global_zero:
            return
        dm = self.datamodule
        method = str(getattr(self.model, "registry_name", "") or type(self.model).__name__)
        label = dm.missingness.label() if hasattr(dm.missingness, "label") else type(dm.missingness).__name__
        seed = os.environ.get("PL_GLOBAL_SEED", "")
        name = f"{method}__{dm.name}__{label}__seed{seed}"
        resolved = yaml.safe_load(self._parser(subcommand).dump(self.config[subcommand], skip_none=False)) or {}
        for lg in loggers:
            init: dict[str, Any] = lg._wandb_init  # type: ignore[attr-defined]
            if getattr(lg, "_experiment", None) is None:
                if init.get("name") in (None, "", "lightning_logs"):  # unset (the parser fills in Lightning's default)
                    init["name"] = name
                extra = dict(init.get("config") or {})
                init["config"] = {**resolved, **extra, "run_dir": str(run_dir), "subcommand": subcommand}
            run = lg.experiment  # type: ignore[attr-defined]
            record = {
                "id": getattr(run, "id", ""),
                "name": getattr(run, "name", ""),
                "project": getattr(run, "project", init.get("project", "")),
                "dir": str(getattr(run, "dir", "")),
                "mode": "offline" if getattr(getattr(run, "settings", None), "_offline", False) else "",
            }
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / WANDB_RUN_FILE).write_text(json.dumps(record, indent=1) + "\n")

    def after_fit(self) -> None:  # noqa: D102
        if self._get(self.config, "test_after_fit", default=True) and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)


def _import(path: str) -> Any:
    """The object at import path ``path`` (``None`` when it does not import)."""
    import importlib

    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _class_names(registry: Registry[type]) -> dict[str, str]:
    """Accepted spellings → class name: registry slug, class name and import path."""
    names: dict[str, str] = {}
    for slug, cls in registry.items():
        names[slug] = cls.__name__
        names[cls.__name__] = cls.__name__
        names[f"{cls.__module__}.{cls.__name__}"] = f"{cls.__module__}.{cls.__name__}"
    return names


def _check_choice(kind: str, value: str, registry: Registry[type]) -> str:
    names = _class_names(registry)
    if value in names:
        return names[value]
    if "." in value:  # a user's own import path: jsonargparse resolves (and reports) it
        return value
    valid = sorted({*registry.names(), *(cls.__name__ for _, cls in registry.items())})
    raise UnknownNameError(_unknown(kind, value, valid))


def _preflight(args: list[str]) -> list[str]:
    """Resolve registry slugs in ``--model``/``--data`` and reject unknown names with suggestions.

    Config files given with ``--config``/``-c`` are read for ``model``/``data`` class paths too, so an unknown
    name there gets the same message instead of a long jsonargparse union error.
    """
    out = list(args)
    for i, tok in enumerate(out):
        for flag, kind, registry in (("--model", "method", METHODS), ("--data", "dataset", DATASETS)):
            if tok == flag and i + 1 < len(out) and not out[i + 1].startswith("-"):
                if not out[i + 1].endswith((".yaml", ".yml", ".json")) and "{" not in out[i + 1]:
                    out[i + 1] = _check_choice(kind, out[i + 1], registry)
            elif tok.startswith(flag + "=") and not tok.endswith((".yaml", ".yml", ".json")) and "{" not in tok:
                out[i] = f"{flag}={_check_choice(kind, tok.split('=', 1)[1], registry)}"
        if tok in ("--config", "-c") and i + 1 < len(out):
            path = Path(out[i + 1])
            cfg = read_yaml(path)
            if not isinstance(cfg, dict):
                raise MMBenchError(f"config file {path} must hold a mapping at top level, got {type(cfg).__name__}")
            for key, kind, registry in (("model", "method", METHODS), ("data", "dataset", DATASETS)):
                section = cfg.get(key)
                if isinstance(section, dict) and isinstance(section.get("class_path"), str):
                    try:
                        _check_choice(kind, section["class_path"], registry)
                    except UnknownNameError as e:
                        raise MMBenchError(f"{path}: {key}.class_path: {e}") from None
    return out


def _config_files(args: ArgsType) -> list[str]:
    if not isinstance(args, list | tuple):
        return []
    return [str(args[i + 1]) for i, a in enumerate(args[:-1]) if a in ("--config", "-c")]


_ROOTS = {
    f"{MultimodalDataModule.__module__}.{MultimodalDataModule.__name__}": "data",
    f"{MissingModalityMethod.__module__}.{MissingModalityMethod.__name__}": "model",
}


def _suggest_option(message: str, parser: Any) -> str:
    """``unrecognized arguments: --trainer.max_epoch=1`` → add ``; did you mean --trainer.max_epochs?``."""
    import difflib
    import re

    found = re.search(r"unrecognized arguments: (--[\w.\-]+)", message)
    if found is None or parser is None:
        return message
    options: list[str] = []
    for p in (parser, *getattr(getattr(parser, "_subcommands_action", None), "_name_parser_map", {}).values()):
        options += [o for o in getattr(p, "_option_string_actions", {}) if o.startswith("--")]
    close = difflib.get_close_matches(found.group(1), sorted(set(options)), n=1, cutoff=0.8)
    return f"{message}; did you mean {close[0]}?" if close else message


def _parse_error(e: BaseException, args: ArgsType, parser: Any = None) -> MMBenchError:
    """One line for a parse/instantiation error; names the config file when the problem is in one.

    A refused untrusted file (``UnsafeFileError``, already one line naming the file and what it asked for) is
    returned as itself, so the Python API raises the same error type as the reader.
    """
    cause = mmbench_cause(e)
    if isinstance(cause, UnsafeFileError):
        return cause
    message = _suggest_option(summarize_parser_error(str(e), _ROOTS), parser)
    files = _config_files(args)
    if files and not any(f in message for f in files):
        # jsonargparse does not say which --config file held an unknown key: find it
        for f in files:
            try:
                text = Path(f).read_text()
            except OSError:
                continue
            for key in _unknown_keys(message):
                if f"{key}:" in text:
                    return MMBenchError(f"{f}: {message}")
    return MMBenchError(message)


def _unknown_keys(message: str) -> list[str]:
    import re

    keys = re.findall(r'[Kk]ey[s]? "?([\w.]+)"? (?:is|are) not expected', message)
    keys += re.findall(r"Option '([\w.]+)' is not accepted", message)
    keys += re.findall(r"unrecognized arguments: (\S+)", message)
    return [k.split(".")[-1].lstrip("-").split("=")[0] for k in keys]


@untrusted_input_guard  # checkpoints: torch.load(weights_only=True) only; wrapped user errors shown as one line
def cli_main(args: ArgsType = None, run: bool = True) -> MMBenchCLI:
    """Run ``mmbench fit|validate|test|predict`` with ``args`` (default: ``sys.argv[1:]``).

    Raises:
        MMBenchError: bad arguments or config (one line, see :func:`mmbench.errors.summarize_parser_error`), a
            refused checkpoint, or a run dir that is already complete.
        UnknownNameError: unknown ``--model``/``--data`` name (with a suggestion).
    """
    if isinstance(args, list | tuple):
        args = _preflight([str(a) for a in args])
    try:
        return MMBenchCLI(
            MissingModalityMethod,
            MultimodalDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True, "config_filename": "config.yaml"},
            trainer_defaults={
                "logger": {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": DEFAULT_SAVE_DIR},
                },
            },
            parser_kwargs={k: dict(v) if isinstance(v, dict) else v for k, v in PARSER_KWARGS.items()},
            args=args,
            run=run,
        )
    except argparse.ArgumentError as e:
        raise _parse_error(e, args) from None
    except (ValueError, TypeError) as e:
        if "Does not validate against any of the Union subtypes" in str(e) or "Namespace(" in str(e):
            raise _parse_error(e, args) from None
        raise
