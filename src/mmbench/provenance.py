"""What really ran: mmbench's own source (version, git sha, dirty flag) and the checkpoint whose weights were tested.

* :func:`source_provenance` reads mmbench's *own* source tree (``git -C <dir of the mmbench package>``), never the
  current directory: outside a checkout the sha is empty, inside another repository it is not that repository's.
* :func:`read_checkpoint` loads a checkpoint the safe way (``torch.load(weights_only=True, map_location="cpu")``)
  and turns every failure into one :class:`~mmbench.errors.MMBenchError` line naming the file.
* :func:`check_checkpoint` refuses a checkpoint whose method class or data facts (modalities, input shapes, task,
  number of classes, stored in the hyper-parameters by the method base) differ from the configured run.
* :func:`weights_provenance` gives the epoch, step, path and selection rule of the weights a ``test`` evaluated:
  from the checkpoint file when one was loaded, from the fit's last checkpoint (or loop counters) otherwise.

Torch is imported inside the functions that need it, so ``mmbench --help`` stays light.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mmbench.errors import MMBenchError

__all__ = [
    "CKPT_METHOD_KEY",
    "check_checkpoint",
    "read_checkpoint",
    "source_provenance",
    "weights_provenance",
]

CKPT_METHOD_KEY = "mmbench"
"""Checkpoint key written by the runner: ``{"method_class": "pkg.Class", "method": "<registry name>"}``."""
DATA_FACTS = ("modalities", "input_shapes", "task", "num_classes")


def _git(pkg_dir: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(pkg_dir), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


@functools.lru_cache(maxsize=4)
def _source(pkg_dir: str) -> tuple[str, str]:
    """``(sha, dirty)`` of the checkout holding ``pkg_dir``; ``("", "")`` when the package is not tracked by git."""
    where = Path(pkg_dir)
    # the package's own files must be tracked: a site-packages copy inside some other repository is not a checkout
    if _git(where, "ls-files", "--error-unmatch", "__init__.py") is None:
        return "", ""
    sha = (_git(where, "rev-parse", "--short=12", "HEAD") or "").strip()
    if not sha:
        return "", ""
    status = _git(where, "status", "--porcelain", "--untracked-files=no")
    dirty = "" if status is None else ("true" if status.strip() else "false")
    return sha, dirty


def source_provenance() -> dict[str, str]:
    """``mmbench_version``, ``git_sha`` (12 hex of mmbench's own checkout, "" when not a checkout) and ``git_dirty``.

    ``git_dirty`` is ``"true"`` when tracked files of that checkout differ from ``HEAD`` (uncommitted edits),
    ``"false"`` when clean and ``""`` without a checkout.
    """
    sha, dirty = _source(str(Path(__file__).resolve().parent))  # this file sits in mmbench's package directory
    try:
        ver = version("mmbench")
    except PackageNotFoundError:
        ver = "0.0.0"  # as mmbench.__version__ without installed metadata
    return {"mmbench_version": ver, "git_sha": sha, "git_dirty": dirty}


# ------------------------------------------------------------------------------------------------- checkpoints
@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    import pickle

    import torch

    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        first = re.sub(r"\x1b\[[0-9;]*m", "", str(e).strip().splitlines()[0]) if str(e).strip() else ""
        low = str(e).lower()
        if "weights_only" in low or "weights only" in low or "unsupported global" in low:
            from mmbench.safe_io import UnsafeFileError, checkpoint_refusal

            raise UnsafeFileError(checkpoint_refusal(e)) from None
        raise MMBenchError(f"checkpoint {path} is not a PyTorch checkpoint ({first[:160]})") from None
    except Exception as e:  # torch raises RuntimeError, EOFError, IndexError, ... on files that are not checkpoints
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MMBenchError(f"checkpoint {path} is not a PyTorch checkpoint ({first[:160]})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise MMBenchError(f"checkpoint {path} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load ``path`` with ``torch.load(weights_only=True, map_location="cpu")`` (cached by path, mtime and size).

    Raises:
        MMBenchError: the file does not exist, is not a PyTorch checkpoint, needs unsafe unpickling, or has no
            ``state_dict``.
    """
    if "://" in str(path):
        from mmbench.safe_io import UnsafeFileError

        raise UnsafeFileError(
            f"--ckpt_path {path}: remote checkpoints are not read (nothing is downloaded at run time; Lightning would "
            "load them with weights_only=False); download the file and pass its path"
        )
    p = Path(path)
    if not p.is_file():
        raise MMBenchError(f"--ckpt_path {p} does not exist")
    st = p.stat()
    return _load(str(p), st.st_mtime_ns, st.st_size)


def _plain(value: Any) -> Any:
    """Lists for tuples (also nested), str for enums: hparams are stored primitive."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return value.value
    return value


def _class_path(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__name__}"


def check_checkpoint(path: str | os.PathLike[str], model: Any, datamodule: Any) -> dict[str, Any]:
    """Refuse a checkpoint that was not trained as the configured method on data with the configured facts.

    Compares the method class recorded by the runner (``checkpoint["mmbench"]``; for older checkpoints the
    state-dict keys) and the data facts ``modalities``, ``input_shapes``, ``task`` and ``num_classes`` stored in
    the checkpoint's hyper-parameters with ``model`` and ``datamodule``.

    Returns:
        The loaded checkpoint.

    Raises:
        MMBenchError: one line naming what differs, with both values.
    """
    ckpt = read_checkpoint(path)
    meta = ckpt.get(CKPT_METHOD_KEY) if isinstance(ckpt.get(CKPT_METHOD_KEY), Mapping) else {}
    want = _class_path(model)
    have = meta.get("method_class") if isinstance(meta, Mapping) else None
    if have and have != want:
        raise MMBenchError(f"checkpoint {path} was trained as {have}, but the config asks for {want}")
    keys = set(ckpt["state_dict"])
    expected = set(model.state_dict())
    if keys != expected:
        missing, extra = sorted(expected - keys), sorted(keys - expected)
        detail = f"missing {missing[:2]}" if missing else f"unexpected {extra[:2]}"
        trained = f" (trained as {have})" if have else ""
        raise MMBenchError(
            f"checkpoint {path}{trained} does not hold the weights of {want}: state_dict keys differ ({detail})"
        )
    hparams = ckpt.get("hyper_parameters") or {}
    for fact in DATA_FACTS:
        if fact not in hparams:
            continue
        stored, configured = _plain(hparams[fact]), _plain(getattr(datamodule, fact, None))
        if stored != configured:
            raise MMBenchError(
                f"checkpoint {path} was trained with {fact}={stored}, but the configured data has {fact}={configured}"
            )
    return ckpt


def weights_provenance(trainer: Any, selection: str) -> dict[str, Any]:
    """``epoch``, ``global_step``, ``ckpt_path`` and ``ckpt_selection`` of the weights being tested.

    With a checkpoint loaded for ``test`` (``trainer.ckpt_path``) its own ``epoch``/``global_step`` are used and the
    rule is ``selection`` unless the path was chosen by a Lightning keyword (``best``/``last``). After ``fit`` (the
    final weights in memory) the fit's checkpoint with the same global step gives epoch and path; without one the
    epoch is the index of the last training epoch (Lightning's checkpoint convention: 0 for the first epoch).
    """
    ckpt_path = getattr(trainer, "ckpt_path", None)
    if ckpt_path:
        ckpt = read_checkpoint(ckpt_path)
        return {
            "epoch": int(ckpt.get("epoch", 0)),
            "global_step": int(ckpt.get("global_step", 0)),
            "ckpt_path": str(ckpt_path),
            "ckpt_selection": selection,
        }
    step = int(trainer.global_step)
    started = int(trainer.fit_loop.epoch_progress.current.started)
    out: dict[str, Any] = {
        "epoch": max(started - 1, 0),
        "global_step": step,
        "ckpt_path": "",
        "ckpt_selection": selection,
    }
    for cb in getattr(trainer, "checkpoint_callbacks", []):
        for candidate in (getattr(cb, "last_model_path", ""), getattr(cb, "best_model_path", "")):
            if candidate and Path(candidate).is_file():
                try:
                    ckpt = read_checkpoint(candidate)
                except MMBenchError:
                    continue
                if int(ckpt.get("global_step", -1)) == step:
                    out.update(epoch=int(ckpt.get("epoch", out["epoch"])), ckpt_path=str(candidate))
                    return out
    return out
