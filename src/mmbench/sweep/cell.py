"""Running one cell (lock, clean, ``fit`` + ``test``, validate, mark) and the ``mmbench sweep _cell`` process."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import signal
import socket
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from mmbench.errors import MMBenchError
from mmbench.sweep.grid import GridCell
from mmbench.sweep.markers import (
    CELL_JSON,
    COMPLETE,
    FAILED,
    FIT_LOG,
    PARTIAL_RESULTS,
    RESULTS,
    CellLock,
    _clean,
    _write_atomic,
    validate_results,
)

__all__ = ["OUTCOME_PREFIX", "execute_cell"]

OUTCOME_PREFIX = "MMBENCH_SWEEP_OUTCOME "


def _task(cell: GridCell, cwd: Path, threads: int | None, wandb: bool, executor: str) -> dict[str, Any]:
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
    from mmbench.runner import cli_main

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
