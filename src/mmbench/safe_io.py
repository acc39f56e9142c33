"""Readers for files that may come from someone else: nothing in such a file may run code.

Researchers pass MOSI pickles, ``.npy``/``.npz`` features, checkpoints and YAML configs around. Each of these formats
can carry a pickle, and a pickle is a small program (``GLOBAL os system`` + ``REDUCE`` calls ``os.system``). mmbench
reads them like this:

* feature pickles: ``mmbench.data.safe_pickle.load_pickle`` (an allow-list of numpy/builtin names);
* ``.npy``: ``load_npy`` (``allow_pickle=False``; an object array is refused with ``UnsafeFileError``);
* checkpoints: ``untrusted_input_guard`` around ``cli_main`` makes every ``torch.load`` in the run use
  ``weights_only=True`` (``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` for the duration of the call, so neither a
  ``weights_only: false`` in a config, Lightning's ``weights_only=False`` default for ``http(s)://`` checkpoint
  paths, nor ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` in the environment can turn it off) and reports a refused
  checkpoint in one line naming the file and the global it asked for.
"""

from __future__ import annotations

import functools
import os
import pickle
import re
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import numpy as np

from mmbench.errors import DataIntegrityError, MMBenchError

__all__ = [
    "UnsafeFileError",
    "checkpoint_refusal",
    "load_npy",
    "mmbench_cause",
    "printable",
    "untrusted_input_guard",
    "weights_only_loads",
]

FORCE_WEIGHTS_ONLY = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
FORCE_NO_WEIGHTS_ONLY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
_NUMPY_PICKLE_REFUSALS = ("allow_pickle", "Python objects", "pickled (object) data")

P = ParamSpec("P")
R = TypeVar("R")


class UnsafeFileError(DataIntegrityError):
    """A file asks for something that could run code (a pickled global, Python objects): refused, nothing ran."""


def printable(text: str, limit: int = 200) -> str:
    """``text`` safe for a one-line message: names from a hostile file may hold newlines or terminal escapes."""
    text = text if text.isprintable() else ascii(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_npy(path: str | os.PathLike[str], mmap_mode: Any = None) -> np.ndarray:
    """``np.load`` of one ``.npy`` array with ``allow_pickle=False``.

    Args:
        path: the ``.npy`` file.
        mmap_mode: as in ``np.load`` (``"r"`` for a read-only memory map).

    Returns:
        The array (a ``np.memmap`` when ``mmap_mode`` is set).

    Raises:
        UnsafeFileError: the file holds Python objects (an object array or a raw pickle); nothing is unpickled.
        DataIntegrityError: the file is missing, truncated, an ``.npz`` archive or not a ``.npy`` file.
    """
    path = Path(path)
    try:
        arr = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except ValueError as e:
        if any(s in str(e) for s in _NUMPY_PICKLE_REFUSALS):
            raise UnsafeFileError(
                f"{path} is not a readable numeric .npy array: it holds Python objects (an object array or a "
                "pickle), which mmbench refuses to unpickle; save numeric arrays instead"
            ) from None
        raise DataIntegrityError(f"{path} is not a readable numeric .npy array: {printable(str(e))}") from None
    except (OSError, EOFError) as e:
        raise DataIntegrityError(f"{path} is not a readable numeric .npy array: {printable(str(e))}") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive under a .npy name
        arr.close()
        raise DataIntegrityError(f"{path} is an .npz archive; expected one .npy array")
    return arr


# ------------------------------------------------------------------------------------------------ checkpoints
def _loaded_file(tb: TracebackType | None) -> str | None:
    """The file a failed ``torch.load`` was reading: Lightning's ``path_or_url`` (what the user gave), else ``f``."""
    import torch.serialization

    load_code = torch.serialization.load.__code__
    found = None
    for frame, _ in traceback.walk_tb(tb):
        local = frame.f_locals
        if frame.f_code.co_name == "_load" and isinstance(local.get("path_or_url"), str | os.PathLike):
            return os.fspath(local["path_or_url"])
        if frame.f_code is load_code and found is None:
            f = local.get("f")
            if isinstance(f, str | os.PathLike):
                found = os.fspath(f)
            else:
                found = next((v for a in ("path", "name") if isinstance(v := getattr(f, a, None), str)), None)
    return found


def checkpoint_refusal(e: pickle.UnpicklingError) -> str:
    """One line: the file and the global (or the first informative line) torch's weights-only unpickler refused."""
    where = _loaded_file(e.__traceback__) or "a checkpoint"
    text = str(e)
    hit = re.search(r"GLOBAL ([^\s]+)", text)
    if hit:
        return (
            f"{printable(where)}: refused to load checkpoint: it asks for the global {printable(hit.group(1))}, "
            "which could run code (mmbench loads checkpoints with torch.load(weights_only=True): tensors and plain "
            "containers only); nothing from the file was run"
        )
    detail = re.search(r"WeightsUnpickler error: (.*)", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reason = detail.group(1) if detail else (lines[1] if len(lines) > 1 else text)
    return f"{printable(where)}: cannot be loaded with torch.load(weights_only=True): {printable(reason)}"


@contextmanager
def weights_only_loads() -> Iterator[None]:
    """Every ``torch.load`` inside the block uses ``weights_only=True``; a refusal becomes one ``UnsafeFileError``.

    Sets ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` (torch reads it at each ``torch.load`` and it wins over an explicit
    ``weights_only=False``) and hides ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` for the duration; both are restored
    afterwards. Processes started inside the block (DDP ranks, data loader workers) inherit the setting.

    Raises:
        UnsafeFileError: a ``torch.load`` in the block was refused (the message names the file and the global).
    """
    saved = {k: os.environ.get(k) for k in (FORCE_WEIGHTS_ONLY, FORCE_NO_WEIGHTS_ONLY)}
    os.environ[FORCE_WEIGHTS_ONLY] = "1"
    os.environ.pop(FORCE_NO_WEIGHTS_ONLY, None)
    try:
        yield
    except pickle.UnpicklingError as e:
        raise UnsafeFileError(checkpoint_refusal(e)) from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def mmbench_cause(e: BaseException) -> MMBenchError | None:
    """The ``MMBenchError`` that jsonargparse wrapped (``raise ... from``) in a union/instantiation error, if any."""
    seen: set[int] = set()
    cause = e.__cause__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, MMBenchError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__
    return None


def untrusted_input_guard(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` (``cli_main``) under ``weights_only_loads``; surface a wrapped ``MMBenchError`` as itself.

    jsonargparse reports an error raised while instantiating the data module (e.g. a refused pickle) inside a
    multi-line "Does not validate against any of the Union subtypes" ``ValueError``; the original error is its
    ``__cause__`` and is re-raised instead, so the CLI prints one line and exits 2.
    """

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        with weights_only_loads():
            try:
                return fn(*args, **kwargs)
            except ValueError as e:
                cause = mmbench_cause(e)
                if cause is None:
                    raise
                raise cause from None

    return guarded
