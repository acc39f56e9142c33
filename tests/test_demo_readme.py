"""``make readme-demo``: the README's demo block is generated from a finished run dir, the rest left untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmbench import demo
from test_leaderboard_stats import STRONG, WEAK, write_cell

HEAD = "# project\n\nintro text, kept byte for byte.\n\n## Demo\n\n"
TAIL = "\n\nText after the block ✓ — also kept.\n"


def fixture_runs(root: Path) -> Path:
    for rate in (0.3, 0.7):
        for seed in (0, 1):
            write_cell(root / f"sh_{rate}_{seed}", "shaspec", seed, STRONG, train_missing_rate=rate)
            write_cell(root / f"mf_{rate}_{seed}", "mean_fill", seed, WEAK, train_missing_rate=rate)
    return root


def test_readme_block_replaced_rest_untouched(tmp_path: Path) -> None:
    runs = fixture_runs(tmp_path / "runs" / "demo")
    readme, plot = tmp_path / "README.md", tmp_path / "docs" / "demo_rates_acc.png"
    readme.write_text(f"{HEAD}{demo.BEGIN}\n| stale | typed |\n| 1 | 2 |\n{demo.END}{TAIL}")
    demo.readme_main(runs, readme, plot)
    text = readme.read_text()
    assert text.startswith(HEAD + demo.BEGIN + "\n") and text.endswith(demo.END + TAIL)
    block = text[len(HEAD) + len(demo.BEGIN) : -len(demo.END + TAIL)]
    assert "stale" not in block and "typed" not in block
    assert "ShaSpec" in block and "Mean fill" in block and "| train missing rate |" in block
    assert block.count("\n| :") >= 2  # a rate table and at least one per-pattern table
    assert f"]({plot.as_posix()})" in block and plot.stat().st_size > 1000
    demo.readme_main(runs, readme, plot)  # idempotent: a second regeneration changes nothing
    assert readme.read_text() == text


@pytest.mark.parametrize(
    "body", ["no markers", f"{demo.END} {demo.BEGIN}", f"{demo.BEGIN}{demo.END}{demo.BEGIN}{demo.END}"]
)
def test_update_readme_refuses_bad_markers(tmp_path: Path, body: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(body)
    with pytest.raises(ValueError, match="exactly one"):
        demo.update_readme(readme, "x")
    assert readme.read_text() == body
