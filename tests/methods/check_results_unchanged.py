"""Prove that a structural change leaves ``results.csv`` values unchanged (issue 11, "Behaviour does not change").

Runs the same ``mmbench fit`` command (2 epochs, CPU, one thread) in two checkouts, each with its own ``src/`` on
``PYTHONPATH`` and its own ``experiments/`` YAMLs, and compares the result rows keyed by
``(eval_protocol, pattern, metric)``: ``value``, ``n``, ``mask_hash`` and ``method_variant`` must be identical.
Provenance columns that name the code or the run (``git_sha``, ``config_hash``, ``run_dir``, versions) are not
compared.

    git worktree add /tmp/base f91645d
    python tests/methods/check_results_unchanged.py --before /tmp/base --after . --out /tmp/cmp
    python tests/methods/check_results_unchanged.py --before /tmp/base --after . --out /tmp/cmp --seg   # + BraTS

``--only before`` / ``--only after`` run one side (the other side's finished runs are reused: a run whose
``results.csv`` exists is not re-run). Exit code 1 when any compared value differs.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

AVMNIST = ["late_fusion", "mean_fill", "zero_fill", "hemis", "shaspec", "ul4m4"]
SEG = ["zero_fill_seg", "late_fusion_seg", "hemis_seg", "shaspec_seg", "ul4m4_seg"]
# BraTS: the semi-synthetic set at test-smoke size (8 cases at 4 mm, 32³ patches), 2 epochs
BRATS_SMALL = [
    "--data.init_args.num_synthetic_cases=8",
    "--data.init_args.spacing_mm=4",
    "--data.init_args.patch_size=32",
    "--data.init_args.split_dir=null",
    "--data.init_args.root=null",
]
COMPARED = ("value", "n", "mask_hash", "method_variant")


def _command(root: Path, config: str, out: Path) -> list[str]:
    data = "data/brats_synth.yaml" if config.endswith("_seg") else "data/avmnist_lite.yaml"
    exp = root / "experiments"
    args = [
        sys.executable,
        "-m",
        "mmbench",
        "fit",
        "--config",
        str(exp / "trainer/default.yaml"),
        "--config",
        str(exp / data),
        "--config",
        str(exp / f"methods/{config}.yaml"),
        "--trainer.max_epochs=2",
        "--trainer.accelerator=cpu",
        "--seed_everything=0",
        f'--trainer.logger={{"class_path": "lightning.pytorch.loggers.CSVLogger", '
        f'"init_args": {{"save_dir": "{out.as_posix()}", "name": "", "version": ""}}}}',
    ]
    return args + (BRATS_SMALL if config.endswith("_seg") else [])


def _run(root: Path, config: str, out: Path) -> Path:
    result = out / "results.csv"
    if result.is_file():
        return result
    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(root / "src"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MMBENCH_CACHE": str(out.parent.parent / "cache"),
    }
    cmd = _command(root, config, out)
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    (out / "log.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{root}: {config} failed (exit {proc.returncode}), see {out / 'log.txt'}")
    return result


def _rows(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(path, newline="") as f:
        return {(r["eval_protocol"], r["pattern"], r["metric"]): r for r in csv.DictReader(f)}


def main() -> int:
    """Run both sides and print one line per method; exit 1 on any difference."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, required=True, help="checkout of the previous commit")
    p.add_argument("--after", type=Path, default=Path("."), help="checkout of the new code")
    p.add_argument("--out", type=Path, required=True, help="folder for the runs")
    p.add_argument("--seg", action="store_true", help="also the BraTS (semi-synthetic) method YAMLs")
    p.add_argument("--only", choices=["before", "after"], help="run one side only, do not compare")
    p.add_argument("--configs", nargs="*", help="method YAML stems (default: the AV-MNIST set, + BraTS with --seg)")
    args = p.parse_args()
    configs = args.configs or (AVMNIST + (SEG if args.seg else []))
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    if args.only:
        sides = {args.only: sides[args.only]}
    results = {side: {c: _run(root, c, args.out / side / c) for c in configs} for side, root in sides.items()}
    if args.only:
        return 0
    failed = False
    print(f"{'method YAML':18s} {'rows':>5s} {'identical':>9s} {'max |Δvalue|':>13s}")
    for c in configs:
        a, b = _rows(results["before"][c]), _rows(results["after"][c])
        same = 0
        worst = 0.0
        for key in a.keys() | b.keys():
            if key in a and key in b and all(a[key][col] == b[key][col] for col in COMPARED):
                same += 1
            elif key in a and key in b:
                worst = max(worst, abs(float(a[key]["value"]) - float(b[key]["value"])))
        failed |= same != len(a) or a.keys() != b.keys()
        print(f"{c:18s} {len(a):5d} {same:9d} {worst:13.3g}")
    print("IDENTICAL" if not failed else "DIFFERENT")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
