"""Executors: run the pending cells of a grid locally (``submitit.LocalExecutor``), on SLURM or in-process (debug)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmbench.errors import MMBenchError
from mmbench.sweep.cell import OUTCOME_PREFIX, _task, execute_cell
from mmbench.sweep.grid import Grid, GridCell
from mmbench.sweep.markers import FAILED, LOCK, _write_atomic, cell_status
from mmbench.sweep.spec import SweepSpec

__all__ = ["run_debug", "run_grid", "run_local", "run_slurm"]


def _cell_command(task_path: Path) -> list[str]:
    return [sys.executable, "-m", "mmbench", "sweep", "_cell", str(task_path)]


def _parse_outcome(stdout: str, cell: GridCell) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(OUTCOME_PREFIX):
            return dict(json.loads(line[len(OUTCOME_PREFIX) :]))
    return _outcome_from_disk(cell, "no outcome reported")


def _outcome_from_disk(cell: GridCell, error: str) -> dict[str, Any]:
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
    running: dict[Any, tuple[GridCell, list[int], float]] = {}
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


def _collect(job: Any, cell: GridCell, job_seconds: float | None = None) -> dict[str, Any]:
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
