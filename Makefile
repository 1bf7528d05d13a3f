# Quickstart targets (see README). Both do the whole set-up first.
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup reproduce test bench

setup:
	bash scripts/setup.sh

## Set up and run the main job (the DVC pipeline on the embedded offline default).
reproduce: setup
	dvc repro

## Set up and run the test suite.
test: setup
	python -m pytest -q

## Hand-run benchmarks (never part of the tests).
bench: setup
	python benchmarks/augment_throughput.py
