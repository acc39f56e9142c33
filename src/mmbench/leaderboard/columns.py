"""Column roles of the leaderboard frames (raw rows, aggregates, published numbers) and the shared constants."""

from __future__ import annotations

from typing import Literal

from mmbench.schema import ALL, COMPLETE_MARKER, PREDICTIONS_FILE, RESULT_COLUMNS, RESULTS_FILE

__all__ = [
    "AGG_COLUMNS",
    "ALL",
    "COMPLETE_MARKER",
    "DUPLICATE_KEY",
    "GROUP_COLUMNS",
    "PER_RUN_COLUMNS",
    "PREDICTIONS_FILE",
    "PUBLISHED_COLUMNS",
    "RAW_COLUMNS",
    "RESULTS_FILE",
    "RESULT_COLUMNS",
    "STAT_COLUMNS",
]

SOURCE_COLUMNS: tuple[str, ...] = ("source", "source_table", "citation", "notes", "results_file")
"""Added to every raw row: ``reproduced``/``published``, the published table and citation, notes, the file read."""
RAW_COLUMNS: tuple[str, ...] = (*RESULT_COLUMNS, *SOURCE_COLUMNS)
"""Columns of ``collect``'s frame and of ``raw.csv``."""
GROUP_COLUMNS: tuple[str, ...] = (
    "source",
    "source_table",
    "citation",
    "dataset",
    "dataset_variant",
    "split_hash",
    "task",
    "method",
    "method_variant",
    "training_regime",
    "train_missing",
    "train_missing_rate",
    "optimizer",
    "lr",
    "weight_decay",
    "lr_scheduler",
    "max_epochs",
    "eval_protocol",
    "eval_missing_rate",
    "ckpt_selection",
    "pattern_id",
    "pattern",
    "n_observed",
    "metric",
)
"""Identity of an aggregate: everything about what was run and evaluated, nothing run-specific."""
PER_RUN_COLUMNS: tuple[str, ...] = (
    "value",
    "n",
    "seed",
    "mask_seed",
    "mask_hash",
    "epoch",
    "global_step",
    "config_hash",
    "git_sha",
    "mmbench_version",
    "torch_version",
    "lightning_version",
    "torchmetrics_version",
    "run_dir",
    "timestamp",
    "ckpt_path",
    "git_dirty",
    "notes",
    "results_file",
)
"""Raw columns that ``aggregate`` does not group by (see the module docstring)."""
REPLICATE_KEY: tuple[str, ...] = ("seed", "mask_seed")
"""What tells replicates of one group apart: a replicate may vary the training seed and the mask seed."""
DUPLICATE_KEY: tuple[str, ...] = (*GROUP_COLUMNS, *REPLICATE_KEY)
"""Two raw rows with equal values here are the same measurement twice."""
STAT_COLUMNS: tuple[str, ...] = (
    "mean",
    "std",
    "n_seeds",
    "sem",
    "t95_low",
    "t95_high",
    "ci95_low",
    "ci95_high",
    "ci_kind",
    "min",
    "max",
)
"""``t95_*``: Student-t interval over replicates (>= 2); ``ci95_*``: the interval of kind ``ci_kind``
(``CI_KINDS``), the one tables and figures show."""
AGG_COLUMNS: tuple[str, ...] = (*GROUP_COLUMNS, *STAT_COLUMNS, "seeds", "mask_seeds", "mask_hash")
"""Columns of ``aggregate``'s frame and of ``leaderboard.csv``."""
PUBLISHED_COLUMNS: tuple[str, ...] = (
    "source_table",
    "citation",
    "dataset",
    "dataset_variant",
    "method",
    "training_regime",
    "eval_protocol",
    "pattern",
    "metric",
    "value",
    "notes",
)
"""Columns every ``baselines/*.csv`` must have; other raw columns are optional, unknown ones are ignored."""

_FLOAT_COLUMNS = ("value", "train_missing_rate", "eval_missing_rate", "lr", "weight_decay")
_INT_COLUMNS = ("pattern_id", "n_observed", "n", "seed", "mask_seed", "epoch", "global_step", "max_epochs")
_BLANK = {"", "nan", "na", "n/a", "none", "null"}
_METHOD_KEYS = ("method", "method_variant")
_PATTERN_KEYS = ("pattern_id", "pattern", "n_observed")
_RATE_KEYS = ("train_missing_rate", "eval_missing_rate", "eval_protocol")
_RATE_COLUMN = {"train": "train_missing_rate", "eval": "eval_missing_rate"}

RateAxis = Literal["auto", "train", "eval"]

CI_KINDS: tuple[str, ...] = ("t_seeds", "bootstrap_samples", "bootstrap_seeds_samples", "none")
"""``ci_kind`` values: t-interval over >= 2 seeds (no per-sample predictions); percentile bootstrap over test
samples (one seed, predictions stored; BraTS: over cases); two-way bootstrap over seeds and samples (several seeds,
predictions stored); none (one seed without predictions, or a published number)."""
