"""User-facing errors and exit codes: the CLI prints one line (no traceback) and exits with the error's code.

Exit codes of ``mmbench``:

* ``0``: done;
* ``2`` (:data:`EXIT_USAGE`): bad input: command line, config file, data, checkpoint, or an OS error on a path
  (read-only or full disk), reported in one line;
* ``3`` (:data:`EXIT_INCOMPLETE`): ``mmbench sweep`` (and ``demo``) ran, but cells were left failed or busy (held by
  another process), so the sweep is not complete and no tables were built from it.
"""

from __future__ import annotations

import re

__all__ = [
    "EXIT_INCOMPLETE",
    "EXIT_USAGE",
    "DataIntegrityError",
    "MMBenchError",
    "SweepIncompleteError",
    "one_line",
    "summarize_parser_error",
]

EXIT_USAGE = 2
EXIT_INCOMPLETE = 3


class MMBenchError(Exception):
    """An error caused by the user's input (config, data, command line), with a message that says what to fix."""

    exit_code: int = EXIT_USAGE


class DataIntegrityError(MMBenchError):
    """A data file is missing, truncated or does not match its expected checksum or layout."""


class SweepIncompleteError(MMBenchError):
    """A sweep finished its run but left cells failed or busy (exit code :data:`EXIT_INCOMPLETE`)."""

    exit_code = EXIT_INCOMPLETE


# lines of jsonargparse's nested union/class errors that say nothing about the cause
_NOISE = (
    re.compile(r"^Does not validate against any of the Union subtypes"),
    re.compile(r"^Subtypes: "),
    re.compile(r"^Errors:$"),
    re.compile(r"^Given value"),
    re.compile(r"^Expected a <class 'NoneType'>"),
    re.compile(r"^Problem with given class_path"),
    re.compile(r"^Parser key "),
    re.compile(r"^Expected a path but .* either not accessible or invalid"),
    re.compile(r"^Not a valid subclass of"),
    re.compile(r"^Validation failed: "),
)
_KEY = re.compile(r'Parser key "([^"]+)"')
_GIVEN_CLASS = re.compile(r"class_path='([\w.]+)'")
_SUBTYPES = re.compile(r"Subtypes: \[(?:<class ')?(?:[\w.]+\[)?([\w.]+)")
_GIVEN_VALUE = re.compile(r"^\s*Given value: (.*)$", re.M)
_CLASS_REPR = re.compile(r"<class '([\w.]+)'>")


def one_line(text: str, limit: int = 400) -> str:
    """Collapse whitespace and cut ``text`` to ``limit`` characters (a message must fit one or two lines)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarize_parser_error(text: str, roots: dict[str, str] | None = None) -> str:
    """Reduce a jsonargparse error (nested union errors, Namespace dumps) to its innermost cause, on one line.

    The result is ``<field>: <cause>`` where ``<field>`` joins the nested ``Parser key "..."`` names (e.g.
    ``data.batch_size``) and ``<cause>`` is the deepest line that is not jsonargparse's scaffolding; a class that is
    being constructed is named (``mmbench.masks.BernoulliMissing: rate must be in [0, 1], got 1.5``). A typoed class
    name gets the valid subclasses with a "did you mean".

    Args:
        text: the error message.
        roots: import path of a top-level base class → its config key (e.g. the data module base → ``"data"``),
            used to name the field of an error raised while constructing a nested class.
    """
    text = str(text)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) <= 1 and "Does not validate" not in text:
        return one_line(text)
    keys: list[str] = []
    for m in _KEY.finditer(text):
        if m.group(1) not in keys:
            keys.append(m.group(1))
    best: tuple[int, str] | None = None
    for ln in lines:
        body = ln.strip().removeprefix("- ").strip()
        if not body or any(p.match(body) for p in _NOISE):
            continue
        depth = len(ln) - len(ln.lstrip(" -"))
        if best is None or depth > best[0]:
            best = (depth, body)
    cause = best[1] if best else lines[-1].strip()
    dotted = re.match(r"Expected a dot import path string: (\S+)", cause)
    if dotted:
        bases = _SUBTYPES.findall(text)
        cause = _unknown_class(dotted.group(1), bases[-1] if bases else "")
    values = [v.strip() for v in _GIVEN_VALUE.findall(text)]
    short = [v for v in values if v and "Namespace(" not in v and "NestedArg(" not in v and len(v) <= 80]
    if short and "Got value" not in cause and short[-1] not in cause:
        cause = f"{cause.rstrip('.')}. Got value: {short[-1]}"
    cause = _CLASS_REPR.sub(r"\1", re.sub(r"Expected an? <class '([\w.]+)'>", r"expected \1", cause))
    given = _GIVEN_CLASS.findall(text)
    if given and not keys and not dotted:
        # an error raised while constructing a nested class: name the field and the class
        inner = re.findall(rf"(\w+)=Namespace\(class_path='{re.escape(given[-1])}'", text)
        bases = _SUBTYPES.findall(text)
        root = (roots or {}).get(bases[0]) if bases else None
        where = ".".join(p for p in (root, inner[-1] if inner else None) if p)
        cls = given[-1].rsplit(".", 1)[-1]
        cause = f"{where} ({cls}): {cause}" if where else f"{given[-1]}: {cause}"
    field = ".".join(keys)
    return one_line(f"{field}: {cause}" if field else cause)


def _unknown_class(name: str, base_path: str) -> str:
    """``unknown <base> 'X'; did you mean 'Y'?`` over the importable subclasses of ``base_path``."""
    import importlib

    from mmbench.registry import unknown_name_message

    valid: list[str] = []
    module, _, cls_name = base_path.rpartition(".")
    try:
        base = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError, ValueError):
        base = None
    if isinstance(base, type):
        stack: list[type] = list(base.__subclasses__())
        while stack:
            sub = stack.pop()
            stack.extend(sub.__subclasses__())
            if not getattr(sub, "__abstractmethods__", None) and not sub.__name__.startswith("_"):
                valid.append(sub.__name__)
                slug = getattr(sub, "registry_name", "")
                if slug and slug not in valid:
                    valid.append(slug)
    kind = cls_name or "class"
    return unknown_name_message(kind, name, sorted(set(valid)))
