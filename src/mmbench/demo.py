"""``mmbench demo``: train and test late fusion on AV-MNIST-lite, then print the per-pattern table."""

from __future__ import annotations

import csv
import time
from pathlib import Path

__all__ = ["demo_main", "format_pattern_table"]

DEMO_CONFIG = Path("experiments/demo.yaml")


def format_pattern_table(results_csv: Path, protocol: str = "all_patterns") -> str:
    """Plain-text table: one row per pattern with accuracy, F1-micro, F1-macro and n."""
    with open(results_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["eval_protocol"] == protocol]
    by_pattern: dict[str, dict[str, str]] = {}
    order: list[str] = []
    for r in rows:
        if r["pattern"] not in by_pattern:
            by_pattern[r["pattern"]] = {"n": r["n"]}
            order.append(r["pattern"])
        by_pattern[r["pattern"]][r["metric"]] = r["value"]
    head = f"{'pattern':<16}{'acc':>8}{'f1_micro':>10}{'f1_macro':>10}{'n':>7}"
    lines = [head, "-" * len(head)]
    for p in order:
        v = by_pattern[p]
        cells = "".join(
            f"{float(v[m]):>{w}.4f}" if m in v else f"{'':>{w}}"
            for m, w in (("acc", 8), ("f1_micro", 10), ("f1_macro", 10))
        )
        lines.append(f"{p:<16}{cells}{v['n']:>7}")
    return "\n".join(lines)


def demo_main(args: list[str]) -> None:
    """Run the demo; extra ``args`` are passed to ``mmbench fit`` (e.g. ``--trainer.max_epochs=2``)."""
    from mmbench.cli import cli_main

    if not DEMO_CONFIG.is_file():
        raise FileNotFoundError(f"{DEMO_CONFIG} not found: run `mmbench demo` from the repository root")
    start = time.perf_counter()
    cli = cli_main(["fit", "--config", str(DEMO_CONFIG), *args])
    writer = next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "ResultsWriter")  # type: ignore[attr-defined]
    path = writer.last_path
    print("\nAV-MNIST-lite, late fusion, train missing rate 0.5, test: every sample under each pattern")
    print(format_pattern_table(path))
    print(f"\nresults: {path}\nconfig:  {path.parent / 'config.yaml'}\nwall time: {time.perf_counter() - start:.1f} s")
