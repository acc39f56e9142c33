"""Names shared by the writers and readers of run dirs, stated once (torch-free, so anything can import it cheaply).

The tidy ``results.csv`` schema: one row per (eval protocol, pattern, metric) with the provenance columns of
DESIGN.md §2 / peers-and-ecosystem.md §4.5; the file names of a run dir; the pattern key for every sample.
"""

from __future__ import annotations

__all__ = ["ALL", "COMPLETE_MARKER", "RESULTS_FILE", "RESULT_COLUMNS"]

RESULTS_FILE = "results.csv"
"""The tidy result rows of a run dir (written by ``mmbench.results.ResultsWriter`` after ``test``)."""
COMPLETE_MARKER = "COMPLETE"
"""Written by the sweep runner next to ``results.csv`` once a cell's results are final."""
ALL = "all"
"""The pattern key that stands for every sample (pattern id 0)."""

RESULT_COLUMNS: tuple[str, ...] = (
    # what was run
    "dataset",  # registry name of the data module, e.g. "avmnist"
    "dataset_variant",  # e.g. "lite", "semi-synthetic-2mm", "multibench"
    "split_hash",  # sha256 of the split definition (case ids / indices)
    "task",  # multiclass | multilabel | regression | segmentation
    "method",  # registry name, e.g. "shaspec"
    "method_variant",  # method switches as "k=v;k=v" (sorted keys), "" when none
    "training_regime",  # "non-dedicated" | "dedicated" | "full"
    "train_missing",  # MissingnessSpec description, e.g. "bernoulli(min_present=1)"
    "train_missing_rate",  # float or empty
    # how it was evaluated
    "eval_protocol",  # "all_patterns" | "rate(0.5)"
    "eval_missing_rate",  # float for rate protocols, empty for all_patterns
    "pattern_id",  # int 1..2^M-1, or 0 for "all"
    "pattern",  # "flair+t1ce" or "all"
    "n_observed",  # number of observed modalities in the pattern ("" for all)
    "metric",  # "acc", "f1_micro", "f1_macro", "dice_et", ...
    "value",  # float, fractions in [0, 1] where the metric is a fraction
    "n",  # number of evaluated (sample, mask) rows after de-duplication
    # provenance
    "seed",  # seed_everything value
    "mask_seed",
    "mask_hash",  # MaskTable.hash of the protocol's evaluation masks
    "ckpt_selection",  # "last" | "best:<monitor>"
    "epoch",
    "global_step",
    "config_hash",  # sha256 of the resolved config.yaml
    "git_sha",
    "mmbench_version",
    "torch_version",
    "lightning_version",
    "torchmetrics_version",
    "run_dir",
    "timestamp",  # ISO 8601 UTC
)
