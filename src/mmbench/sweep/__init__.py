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

**Exit codes** (``mmbench sweep``, ``mmbench demo``): 0 when every cell is complete; 2 for a bad spec or an output
folder that cannot be written (checked before the expansion); 3 (``mmbench.errors.EXIT_INCOMPLETE``) when cells
were left failed or busy (held by another process's lock), so that scripts never mistake a running or broken sweep
for a finished one; ``mmbench demo`` builds no tables then.

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
``--dry-run`` reads the registered methods and datasets from source instead (``mmbench.registry.declared_classes``:
class paths, ``supported_tasks``, each dataset's task) and instantiates nothing, so it imports neither Lightning nor
torch; it prints the grid, cell ids and errors the imported registries would give (``--dry-run --check=true`` also
instantiates every pair).
Run it from the repository root (config paths in specs are relative to the working directory).
"""

from mmbench.sweep.cell import execute_cell
from mmbench.sweep.command import cli, format_grid
from mmbench.sweep.executors import run_debug, run_grid, run_local, run_slurm
from mmbench.sweep.grid import Grid, GridCell, expand, missing_label
from mmbench.sweep.markers import (
    CELL_JSON,
    COMPLETE,
    FAILED,
    FIT_LOG,
    LOCK,
    PARTIAL_RESULTS,
    RESULTS,
    CellLock,
    cell_status,
    validate_results,
)
from mmbench.sweep.spec import DatasetEntry, LoadedSpec, MethodEntry, SlurmOptions, SweepSpec, load_spec

__all__ = [
    "CELL_JSON",
    "COMPLETE",
    "FAILED",
    "FIT_LOG",
    "LOCK",
    "PARTIAL_RESULTS",
    "RESULTS",
    "CellLock",
    "DatasetEntry",
    "Grid",
    "GridCell",
    "LoadedSpec",
    "MethodEntry",
    "SlurmOptions",
    "SweepSpec",
    "cell_status",
    "cli",
    "execute_cell",
    "expand",
    "format_grid",
    "load_spec",
    "missing_label",
    "run_debug",
    "run_grid",
    "run_local",
    "run_slurm",
    "validate_results",
]
