#!/usr/bin/env bash
# pdflatex + booktabs/graphicx for tests/test_leaderboard_stats.py::test_every_emitted_tex_compiles (skips without it)
set -euo pipefail
if command -v pdflatex >/dev/null 2>&1 && kpsewhich booktabs.sty >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends texlive-latex-base texlive-latex-extra >/dev/null
