#!/usr/bin/env bash
# The whole GPU check of issue 16 as ONE device command: `make test-gpu`, then `make bench-gpu`, outputs under $OUT.
#
# Prepare once, here (PyPI reachable): bash tests/gpu/fetch_wheels.sh     (≈ 22 MiB of wheels into .whl/)
# Then one device call:  run(command="bash tests/gpu/device_run.sh", carry=[".whl"], timeout_s=520)
# Budget: test-gpu ≤ 150 s, bench-gpu ≤ 300 s (no section starts after 200 s), so ≤ 7.5 min plus start-up.
# $OUT (default ./gpu_out) receives: summary.txt, nvidia-smi.txt, env.txt, test_gpu.log, test_gpu.xml,
# bench_gpu.log, bench_gpu.json.
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline WANDB_SILENT=true JSONARGPARSE_DEPRECATION_WARNINGS=off
PY=$(command -v python3)
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed" | tee "$OUT/summary.txt"; exit 1; }
  export PYTHONPATH="$PWD/src:/tmp/site"
else
  export PYTHONPATH="$PWD/src"
fi
start=$(date +%s)
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
"$PY" - >"$OUT/env.txt" 2>&1 <<'PYEOF'
import torch, lightning, torchmetrics, mmbench
print("python", __import__("sys").version)
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
print("lightning", lightning.__version__, "torchmetrics", torchmetrics.__version__, "mmbench", mmbench.__file__)
PYEOF
cat "$OUT/env.txt"
# make with the machine's python (no .venv there: -o keeps make from building one)
MAKE_ARGS=(-o .venv/.mmbench-installed "BIN=$(dirname "$PY")")
timeout 150 make "${MAKE_ARGS[@]}" test-gpu PYTEST_GPU_ARGS="--junitxml=$OUT/test_gpu.xml" 2>&1 | tee "$OUT/test_gpu.log"
rc_test=${PIPESTATUS[0]}
timeout 300 make "${MAKE_ARGS[@]}" bench-gpu BENCH_GPU_ARGS="--device cuda --budget-s 200 --out $OUT/bench_gpu.json" \
  2>&1 | tee "$OUT/bench_gpu.log"
rc_bench=${PIPESTATUS[0]}
echo "test-gpu rc=$rc_test; bench-gpu rc=$rc_bench; wall $(( $(date +%s) - start )) s" | tee "$OUT/summary.txt"
tail -n 3 "$OUT/test_gpu.log" >>"$OUT/summary.txt"
[ "$rc_test" -eq 0 ] && [ "$rc_bench" -eq 0 ]
