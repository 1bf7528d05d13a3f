# Quickstart targets (see README). Both do the whole set-up first.
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)

# Optional: GRID=cifar10-cpu (or paper) makes grids/$(GRID).yaml the active params.yaml first;
# DATASET=cifar100 overrides that grid's dataset (paper: cifar10 | cifar100 | tinyimagenet).
GRID ?=
DATASET ?=
# Optional: EXECUTOR=serial|local|ray|slurm and WORKERS=N pick where the runs execute on this machine
# (README "Running on many GPUs and on a cluster"); they never change a result.
EXECUTOR ?=
WORKERS ?=
ifneq ($(EXECUTOR),)
export SOFTBENCH_EXECUTOR := $(EXECUTOR)
endif
ifneq ($(WORKERS),)
export SOFTBENCH_WORKERS := $(WORKERS)
endif

.PHONY: setup reproduce test bench

setup:
	bash scripts/setup.sh

## Set up and run the main job: the DVC pipeline on the active grid (default: quick, embedded offline data).
reproduce: setup
	@if [ -n "$(GRID)" ]; then softbench grid use $(GRID) $(if $(DATASET),--dataset $(DATASET)); fi
	dvc repro

## Set up and run the test suite.
test: setup
	python -m pytest -q

## Hand-run benchmarks (never part of the tests).
bench: setup
	python benchmarks/augment_throughput.py
	python benchmarks/stats_report.py
