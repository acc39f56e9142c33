"""A restricted unpickler for feature pickles (MultiBench / MMSA CMU-MOSI, CMU-MOSEI): data in, never code.

A pickle is a small program: ``GLOBAL module name`` looks up any importable callable and ``REDUCE`` calls it, so
``pickle.load`` of a shared file runs whatever its author chose. ``RestrictedUnpickler.find_class`` is the only way a
pickle reaches a global, and it resolves exactly the names that numpy arrays and builtin containers pickle to
(``ALLOWED_GLOBALS``: what numpy 2.4 asks for at protocols 0-5, the numpy 1.x spellings of the same helpers, and
numpy's own Python 2 test pickle; ``tests/test_security.py`` checks each); any other global is refused before
anything is called, and ``load_pickle`` reports it as ``UnsafeFileError`` naming the file and the global
(``module.name`` as spelled in the file).

* numpy: ``numpy.ndarray``, ``numpy.dtype`` and the reconstruct helpers ``multiarray._reconstruct`` (protocols
  0-4), ``multiarray.scalar`` (numpy scalars) and ``numeric._frombuffer`` (protocol 5, in-band buffers), in both the
  numpy 1.x (``numpy.core``) and numpy 2.x (``numpy._core``) spelling, each resolved to the installed numpy's
  function (so either spelling loads under either numpy). Object arrays load too: their elements are pickled
  inline and pass through the same ``find_class``.
* containers: ``builtins.set``, ``frozenset``, ``bytearray``, ``bytes``, ``complex`` and ``collections.OrderedDict``;
  ``_codecs.encode`` only with the ``latin1`` codec (protocols 0-2 store ``bytes`` as ``encode(text, "latin1")``).
* Python 2 names (``__builtin__``, ``copy_reg``) are mapped as ``pickle`` does (``_compat_pickle``) before the check;
  Python 2 ``str`` data needs ``encoding="latin1"``, which ``load_pickle`` retries with.
* Persistent ids and out-of-band buffers (pickle protocol 5 with ``buffer_callback``, which files never use) are
  refused.
"""

from __future__ import annotations

import _compat_pickle
import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

import numpy as np

from mmbench.errors import DataIntegrityError
from mmbench.safe_io import UnsafeFileError, printable

__all__ = ["ALLOWED_GLOBALS", "RefusedGlobalError", "RestrictedUnpickler", "load_pickle"]


class RefusedGlobalError(pickle.UnpicklingError):
    """A pickle asked for something outside ``ALLOWED_GLOBALS``; ``what`` says what (``the global module.name``)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"refused {what}")
        self.what = what


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as pickle protocols 0-2 use it for ``bytes``: ``encode(text, "latin1")``, nothing else."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591") or errors != "strict":
        raise RefusedGlobalError(f"the global _codecs.encode with codec {printable(str(encoding))!r}")
    if not isinstance(obj, str):
        raise RefusedGlobalError(f"the global _codecs.encode of a {type(obj).__name__}")
    return obj.encode("latin-1")


def _numpy_helpers() -> dict[str, Any]:
    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    helpers = {
        "multiarray._reconstruct": getattr(multiarray, "_reconstruct"),  # noqa: B009
        "multiarray.scalar": getattr(multiarray, "scalar"),  # noqa: B009
        "numeric._frombuffer": getattr(numeric, "_frombuffer"),  # noqa: B009
    }
    return {f"{prefix}.{name}": fn for prefix in ("numpy.core", "numpy._core") for name, fn in helpers.items()}


ALLOWED_GLOBALS: dict[str, Any] = {
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": np.dtype,
    **_numpy_helpers(),
    "collections.OrderedDict": OrderedDict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.bytearray": bytearray,
    "builtins.bytes": bytes,
    "builtins.complex": complex,
    "_codecs.encode": _latin1_encode,
}
"""``module.name`` (Python 3 spelling) → the object a feature pickle may reach; everything else is refused."""


def _python3_name(module: str, name: str) -> str:
    """Map Python 2 names (``__builtin__.set``) to Python 3 (``builtins.set``), as ``pickle``'s ``fix_imports`` does."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` resolves only ``ALLOWED_GLOBALS``; it never imports a module.

    Args:
        file: a binary file opened for reading.
        encoding: how Python 2 ``str`` objects are decoded (``"latin1"`` for Python 2 numpy pickles).
    """

    def __init__(self, file: IO[bytes], *, encoding: str = "ASCII") -> None:
        super().__init__(file, encoding=encoding, errors="strict")

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        obj = ALLOWED_GLOBALS.get(_python3_name(module, name))
        if obj is None:
            raise RefusedGlobalError(f"the global {printable(f'{module}.{name}')}")
        return obj

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise RefusedGlobalError("a persistent id (external object reference)")


def load_pickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle a feature pickle with ``RestrictedUnpickler`` (retrying Python 2 files with ``encoding="latin1"``).

    Args:
        path: the ``.pkl`` file.

    Returns:
        The unpickled object (for MOSI pickles, a dict of splits of dicts of numpy arrays).

    Raises:
        UnsafeFileError: the pickle asks for a global outside ``ALLOWED_GLOBALS``; the one-line message names the
            file and the global, and nothing from the file was called.
        DataIntegrityError: the file is missing, truncated or not a pickle.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            try:
                return RestrictedUnpickler(f).load()
            except UnicodeDecodeError:  # Python 2 str data (numpy arrays' raw bytes among them)
                f.seek(0)
                return RestrictedUnpickler(f, encoding="latin1").load()
    except RefusedGlobalError as e:
        raise UnsafeFileError(
            f"{path}: refused to unpickle {e.what}: feature pickles may hold only numpy arrays, dtypes "
            "and scalars and builtin containers; nothing from the file was run"
        ) from None
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, KeyError, IndexError) as e:
        raise DataIntegrityError(f"{path} is not a readable pickle: {printable(str(e))}") from None
