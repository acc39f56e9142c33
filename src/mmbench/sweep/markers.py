"""The files of a cell dir: names, the cell lock, the cell's status and results validation."""

from __future__ import annotations

import csv
import fcntl
import os
import socket
from pathlib import Path

from mmbench.errors import MMBenchError
from mmbench.schema import COMPLETE_MARKER, RESULT_COLUMNS, RESULTS_FILE

__all__ = [
    "CELL_JSON",
    "COMPLETE",
    "FAILED",
    "FIT_LOG",
    "LOCK",
    "PARTIAL_RESULTS",
    "RESULTS",
    "CellLock",
    "cell_status",
    "validate_results",
]

COMPLETE = COMPLETE_MARKER
FAILED = "FAILED"
LOCK = ".lock"
CELL_JSON = "cell.json"
FIT_LOG = "fit.log"
RESULTS = RESULTS_FILE
PARTIAL_RESULTS = "results.partial.csv"


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
