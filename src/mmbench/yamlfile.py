"""Reading YAML config files, with one error message for a missing or malformed file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mmbench.errors import MMBenchError

__all__ = ["read_yaml"]


def read_yaml(path: str | Path) -> Any:
    """The parsed contents of the YAML file ``path`` (``{}`` for an empty file).

    Raises:
        MMBenchError: the file does not exist or is not valid YAML (the message names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise MMBenchError(f"config file {path} does not exist")
    try:
        return yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise MMBenchError(f"config file {path} is not valid YAML: {' '.join(str(e).split())}") from None
