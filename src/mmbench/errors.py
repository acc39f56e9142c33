"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""

from __future__ import annotations

__all__ = ["DataIntegrityError", "MMBenchError"]


class MMBenchError(Exception):
    """An error caused by the user's input (config, data, command line), with a message that says what to fix."""


class DataIntegrityError(MMBenchError):
    """A data file is missing, truncated or does not match its expected checksum or layout."""
