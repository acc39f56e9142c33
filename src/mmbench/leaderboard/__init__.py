"""Run dirs → leaderboard: raw rows, aggregates with uncertainty, paired comparisons, tables, figures, robustness.

Everything here is a pure function of the ``results.csv`` files under the given run roots (and, on request, of the
published numbers in ``baselines/*.csv``): it keeps no state, never imports a method or torch, and writes the same
files for the same inputs, so it can be re-run at any time while a sweep fills in.

Flow::

    collect(run roots) ──► raw (one tidy row per run × protocol × pattern × metric × seed)
        [+ load_published(baselines/)  rows marked source="published", their own groups]
    aggregate(raw[, samples]) ──► leaderboard (mean, std, n_seeds, t-interval; bootstrap CI from predictions)
    compare(raw, samples)     ──► paired differences vs each row's best: bootstrap CI, permutation p, Holm, P(X>Y)
    pattern_tables / rate_tables ──► Table ──► .to_latex() / .to_markdown() / .to_text()
    robustness(raw)    ──► normalised area under the metric-vs-rate curve per method
    plot_rates / plot_pattern_heatmaps / plot_observed_count ──► PDF + PNG (300 dpi)

The package by role: ``columns`` (column roles, constants), ``labels`` (metric conventions, display names),
``read`` (reading runs and published numbers), ``aggregation`` (groups of replicates), ``comparison`` (paired
comparisons), ``stats`` (pure statistics, numpy/scipy only), ``samples`` (per-sample predictions → statistics
inputs), ``slices`` (settings of tables and plots), ``tables``, ``nauc`` (robustness), ``figures``, ``main``
(``leaderboard_main`` and the command).

Column roles (decided here, checked by the tests against ``RESULT_COLUMNS``):

* ``GROUP_COLUMNS`` identify what was run and evaluated. ``aggregate`` groups by all of them, so runs that differ in
  any of them are never averaged together. They include the checkpoint selection, the split hash, and the optimiser,
  learning rate, weight decay, scheduler and epoch budget.
* ``PER_RUN_COLUMNS`` change from one run of the same configuration to the next and are dropped by ``aggregate``:
  ``seed`` and ``mask_seed`` (what is averaged over: a replicate may vary both), ``value``/``n``, ``epoch``,
  ``global_step``, ``config_hash`` (it contains the seed), ``git_sha``, library versions, ``run_dir``,
  ``timestamp``, and the bookkeeping columns ``notes`` and ``results_file``. ``mask_hash`` is carried along as the
  set of hashes seen (a warning is logged when one group holds more than one: its seeds were not scored on the same
  masks; under ``all_patterns`` the masks do not depend on the mask seed).
* ``DUPLICATE_KEY`` = ``GROUP_COLUMNS`` + ``seed`` + ``mask_seed``: two rows with the same key are the same
  measurement twice (e.g. a cell re-run into a second directory) and ``collect`` refuses them.
"""

from mmbench.leaderboard.aggregation import aggregate
from mmbench.leaderboard.columns import (
    AGG_COLUMNS,
    ALL,
    COMPLETE_MARKER,
    DUPLICATE_KEY,
    GROUP_COLUMNS,
    PER_RUN_COLUMNS,
    PREDICTIONS_FILE,
    PUBLISHED_COLUMNS,
    RAW_COLUMNS,
    RESULT_COLUMNS,
    RESULTS_FILE,
    STAT_COLUMNS,
)
from mmbench.leaderboard.comparison import Comparisons, compare
from mmbench.leaderboard.figures import plot_observed_count, plot_pattern_heatmaps, plot_rates
from mmbench.leaderboard.labels import display_name, lower_is_better, metric_scale, modalities_from_patterns
from mmbench.leaderboard.main import cli, format_terminal_tables, leaderboard_main
from mmbench.leaderboard.nauc import robustness
from mmbench.leaderboard.read import collect, default_baselines_dir, load_published
from mmbench.leaderboard.tables import Cell, Row, Table, latex_escape, pattern_tables, rate_tables

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
    "Cell",
    "Comparisons",
    "Row",
    "Table",
    "aggregate",
    "cli",
    "collect",
    "compare",
    "default_baselines_dir",
    "display_name",
    "format_terminal_tables",
    "latex_escape",
    "leaderboard_main",
    "load_published",
    "lower_is_better",
    "metric_scale",
    "modalities_from_patterns",
    "pattern_tables",
    "plot_observed_count",
    "plot_pattern_heatmaps",
    "plot_rates",
    "rate_tables",
    "robustness",
]
