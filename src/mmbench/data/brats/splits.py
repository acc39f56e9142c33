"""Split files (one case id per line): reading, writing, seeded random splits and their hash."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mmbench.data.brats.files import BraTSDataError

__all__ = ["random_split", "read_split", "split_hash", "write_split"]


def read_split(path: str | Path) -> list[str]:
    """Case ids of a split file: one per line; blank lines and lines starting with ``#`` are ignored.

    Raises:
        FileNotFoundError: the file does not exist.
        BraTSDataError: the file lists no ids, or lists an id twice.
    """
    path = Path(path)
    ids = [s for line in path.read_text().splitlines() if (s := line.strip()) and not s.startswith("#")]
    if not ids:
        raise BraTSDataError(f"split file {path} lists no case ids (expected one case id per line)")
    dups = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dups:
        raise BraTSDataError(f"split file {path} lists case ids more than once: {dups}")
    return ids


def split_hash(case_ids: Sequence[str]) -> str:
    """``sha256:<16 hex>`` of the sorted case ids joined by newlines; independent of the order of the file."""
    return "sha256:" + hashlib.sha256("\n".join(sorted(case_ids)).encode()).hexdigest()[:16]


def random_split(
    case_ids: Sequence[str],
    fractions: Sequence[float] = (0.75, 0.125, 0.125),
    seed: int = 0,
    names: Sequence[str] = ("train", "val", "test"),
) -> dict[str, list[str]]:
    """A seeded random partition of ``case_ids`` (sorted ids within each split).

    Split sizes are the rounded cumulative fractions, so they always add up to ``len(case_ids)``
    (24 cases at 0.75/0.125/0.125 → 18/3/3). The result depends on the set of ids, not their order.

    Args:
        case_ids: the ids (unique).
        fractions: one non-negative weight per split name (normalised to sum 1).
        seed: permutation seed.
        names: split names.

    Returns:
        ``{name: [case ids]}``.
    """
    if len(fractions) != len(names):
        raise ValueError(f"{len(fractions)} fractions for {len(names)} split names {list(names)}")
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be non-negative with a positive sum, got {list(fractions)}")
    ids = sorted(set(case_ids))
    if len(ids) != len(case_ids):
        raise ValueError("case_ids contains duplicates")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    bounds = np.rint(np.cumsum(fractions) / sum(fractions) * len(ids)).astype(int)
    starts = [0, *bounds[:-1].tolist()]
    return {n: sorted(order[a:b]) for n, a, b in zip(names, starts, bounds.tolist(), strict=True)}


def write_split(split_dir: str | Path, splits: Mapping[str, Sequence[str]]) -> dict[str, Path]:
    """Write ``<split_dir>/<name>.txt`` (one case id per line) for each split.

    Args:
        split_dir: folder (created).
        splits: ``{name: case ids}``, e.g. from ``random_split``.

    Returns:
        ``{name: file}``.

    Raises:
        BraTSDataError: a split is empty or a case id is in two splits.
    """
    owner: dict[str, str] = {}
    for name, ids in splits.items():
        if not ids:
            raise BraTSDataError(f"split {name!r} is empty; every split file must list at least one case")
        for i in ids:
            if i in owner:
                raise BraTSDataError(f"case {i!r} is in both split {owner[i]!r} and split {name!r}")
            owner[i] = name
    out = Path(split_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, ids in splits.items():
        paths[name] = out / f"{name}.txt"
        paths[name].write_text("\n".join(ids) + "\n")
    return paths
