"""Fault injection: bad inputs, broken files, concurrent writers and kills (issue 13).

* a catalogue of bad inputs (config fields, stage params, ``--set`` paths, command-line arguments,
  grids, broken run files, broken result files): each must give one clear error that names the
  field or file and what is allowed, exit status 2, no traceback and no partial output; broken
  result files must be listed by the results stage (``missing``/``corrupt``/``failed`` with the
  file and the reason), never dropped;
* two writers on one run directory: one wins, the other gets the lock error, the directory is
  consistent;
* SIGKILL at random points of a short run (in the middle of an atomic write, right after one, at a
  random time), then ``--resume``: the final metrics and epoch log equal an uninterrupted run's and
  no ``.tmp`` file is left.

``SOFTBENCH_FAULT_KILLS`` / ``SOFTBENCH_FAULT_WRITERS`` raise the number of kill points / concurrent
writer trials (defaults keep the file under a minute and a half on a 2-core CPU); the counts recorded
in docs/reliability.md come from such a run.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from harness.cli import main
from harness.config import load_config
from harness.executors import torch_threads
from harness.grid import _validate, arm_config, eval_dir, fitted_mapping_path, load_grid, train_dir
from harness.models import build_model
from harness.results import account_for_grid, collect_results
from harness.runs import LOCK_FILE, RunBusyError, lock_holder, read_status, run_lock
from harness.workflow import train_and_evaluate

REPO = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("SOFTBENCH_FAULT_KILLS", "3"))
WRITERS = int(os.environ.get("SOFTBENCH_FAULT_WRITERS", "1"))

#: a tiny valid run: 60 training images, 3 epochs, smallnet 8/8/8, clean metrics only
TINY = {"dataset": "mnist5k", "n_per_class": 6, "model": "smallnet", "model_kwargs": {"widths": [8, 8, 8]},
        "epochs": 3, "batch_size": 16, "lr": 0.05, "corruptions": False, "eval_batch_size": 500,
        "augment": ["flip", {"kind": "crop", "params": {"padding": 2}},
                    {"kind": "trivial_augment", "soft": True, "mapping": "polynomial_chance"}]}


# ------------------------------------------------------------------------------------------ catalogue
@dataclass(frozen=True)
class Case:
    """One bad input: ``kind`` says how it is fed in; ``expect``: substrings of the error (the field or
    file, and the allowed values)."""

    id: str
    kind: str
    data: object
    expect: tuple[str, ...]
    extra: dict = field(default_factory=dict)


def _cfg(id_, over, *expect, base=True):
    d = {**TINY, **over} if base else over
    return Case(id_, "config", d, expect)


def _stage(id_, stage, *expect):
    return Case(id_, "config", {**TINY, "augment": [stage]}, expect)


CONFIG_CASES = [
    _cfg("dataset", {"dataset": "imagenet"}, "'dataset'", "mnist5k", "cifar10"),
    _cfg("n_per_class-zero", {"n_per_class": 0}, "'n_per_class'", ">= 1"),
    _cfg("n_per_class-str", {"n_per_class": "ten"}, "'n_per_class'", ">= 1"),
    _cfg("model", {"model": "vgg"}, "'model'", "smallnet", "wrn28_4"),
    _cfg("model_kwargs-list", {"model_kwargs": [1]}, "'model_kwargs'", "a mapping"),
    _cfg("model_kwargs-unknown", {"model_kwargs": {"foo": 1}}, "model_kwargs.foo", "['widths']"),
    _cfg("model_kwargs-wrn-depth", {"model": "wrn28_4", "model_kwargs": {"depth": 10}}, "model_kwargs.depth",
         "dropout", "reference_quirks"),
    _cfg("model_kwargs-resnet", {"model": "resnet18", "model_kwargs": {"widths": [8]}}, "model_kwargs.widths", "[]"),
    _cfg("model_kwargs-widths-str", {"model_kwargs": {"widths": "abc"}}, "'model_kwargs'", "3 ints >= 2"),
    _cfg("model_kwargs-widths-short", {"model_kwargs": {"widths": [8]}}, "'model_kwargs'", "3 ints >= 2"),
    _cfg("model_kwargs-dropout", {"model": "wrn28_4", "model_kwargs": {"dropout": 2}}, "'model_kwargs'", "[0, 1)"),
    _cfg("epochs-zero", {"epochs": 0}, "'epochs'", ">= 1"),
    _cfg("epochs-float", {"epochs": 1.5}, "'epochs'", ">= 1"),
    _cfg("epochs-bool", {"epochs": True}, "'epochs'", ">= 1"),
    _cfg("batch_size-one", {"batch_size": 1}, "'batch_size'", ">= 2", "BatchNorm"),
    _cfg("batch_size-zero", {"batch_size": 0}, "'batch_size'", ">= 2"),
    _cfg("batch_size-str", {"batch_size": "128"}, "'batch_size'", ">= 2"),
    _cfg("lr-zero", {"lr": 0}, "'lr'", "finite number > 0"),
    _cfg("lr-negative", {"lr": -0.1}, "'lr'", "finite number > 0"),
    _cfg("lr-inf", {"lr": math.inf}, "'lr'", "finite number > 0"),
    _cfg("lr-nan", {"lr": math.nan}, "'lr'", "finite number > 0"),
    _cfg("lr-str", {"lr": "fast"}, "'lr'", "finite number > 0"),
    _cfg("momentum-one", {"momentum": 1.0}, "'momentum'", "[0, 1)"),
    _cfg("momentum-negative", {"momentum": -0.1}, "'momentum'", "[0, 1)"),
    _cfg("momentum-nan", {"momentum": math.nan}, "'momentum'", "[0, 1)"),
    _cfg("momentum-inf", {"momentum": math.inf}, "'momentum'", "[0, 1)"),
    _cfg("weight_decay-negative", {"weight_decay": -1}, "'weight_decay'", "finite number >= 0"),
    _cfg("weight_decay-nan", {"weight_decay": math.nan}, "'weight_decay'", "finite number >= 0"),
    _cfg("weight_decay-inf", {"weight_decay": math.inf}, "'weight_decay'", "finite number >= 0"),
    _cfg("schedule", {"schedule": "step"}, "'schedule'", "cosine", "constant"),
    _cfg("combine", {"combine": "max"}, "'combine'", "product", "min"),
    _cfg("reweight", {"reweight": "yes"}, "'reweight'", "true or false"),
    _cfg("nesterov", {"nesterov": 1}, "'nesterov'", "true or false"),
    _cfg("compile", {"compile": "no"}, "'compile'", "true or false"),
    _cfg("channels_last", {"channels_last": None}, "'channels_last'", "true or false"),
    _cfg("corruptions", {"corruptions": 1}, "'corruptions'", "true or false"),
    _cfg("label_smoothing-one", {"label_smoothing": 1.0}, "'label_smoothing'", "[0, 1)"),
    _cfg("label_smoothing-negative", {"label_smoothing": -0.1}, "'label_smoothing'", "[0, 1)"),
    _cfg("label_smoothing-nan", {"label_smoothing": math.nan}, "'label_smoothing'", "[0, 1)"),
    _cfg("label_smoothing-with-soft", {"label_smoothing": 0.1}, "'label_smoothing'", "0 when a soft"),
    _cfg("ls-convention", {"label_smoothing_convention": "torch"}, "'label_smoothing_convention'", "other",
         "uniform"),
    _cfg("seed", {"seed": -1}, "'seed'", ">= 0"),
    _cfg("device", {"device": "tpu"}, "'device'", "auto", "cpu", "cuda"),
    _cfg("precision", {"precision": "fp16"}, "'precision'", "fp32", "bf16"),
    _cfg("severities-zero", {"corruption_severities": [0]}, "'corruption_severities'", "1..5"),
    _cfg("severities-empty", {"corruption_severities": []}, "'corruption_severities'", "1..5"),
    _cfg("severities-int", {"corruption_severities": 3}, "'corruption_severities'", "1..5"),
    _cfg("corruption_n", {"corruption_n": 0}, "'corruption_n'", ">= 1 or null"),
    _cfg("corruption_cache", {"corruption_cache": ""}, "'corruption_cache'", "folder path"),
    _cfg("op_eval_bins", {"op_eval_bins": [31]}, "'op_eval_bins'", "0..30"),
    _cfg("eval_batch_size", {"eval_batch_size": 0}, "'eval_batch_size'", ">= 1"),
    _cfg("augment_chunk", {"augment_chunk": 0}, "'augment_chunk'", ">= 1"),
    _cfg("checkpoint_every", {"checkpoint_every": 0}, "'checkpoint_every'", ">= 1"),
    _cfg("data_source", {"data_source": 5}, "'data_source'", "a path string"),
    _cfg("unknown-field", {"epoch": 3}, "'epoch'", "allowed fields", "epochs"),
    _cfg("augment-not-list", {"augment": "flip"}, "'augment'", "a list of stages"),
    _cfg("augment-item", {"augment": [42]}, "'augment[0]'", "kind, soft, mapping, params"),
    _cfg("stage-kind", {"augment": [{"kind": "blur"}]}, "augment[0].kind", "trivial_augment", "random_erasing"),
    _cfg("stage-soft-flip", {"augment": [{"kind": "flip", "soft": True}]}, "augment[0].soft", "false for kind"),
    _cfg("stage-key", {"augment": [{"kind": "flip", "strength": 1}]}, "augment[0].strength", "allowed keys"),
    _cfg("stage-soft-str", {"augment": [{"kind": "flip", "soft": "yes"}]}, "augment[0].soft", "true or false"),
    _cfg("stage-params-list", {"augment": [{"kind": "flip", "params": [1]}]}, "augment[0].params", "a mapping"),
    _cfg("stage-mapping-preset-re", {"augment": [{"kind": "random_erasing", "mapping": "polynomial_chance"}]},
         "augment[0].mapping", "presets by name exist only for trivial_augment"),
    _cfg("stage-mapping-int", {"augment": [{"kind": "trivial_augment", "mapping": 5}]}, "augment[0].mapping",
         "a preset name"),
    _stage("crop-unknown", {"kind": "crop", "params": {"pad": 4}}, "augment[0].params.pad", "['padding']"),
    _stage("crop-negative", {"kind": "crop", "params": {"padding": -1}}, "augment[0].params", "padding", ">= 0"),
    _stage("crop-str", {"kind": "crop", "params": {"padding": "4"}}, "augment[0].params", "padding", ">= 0"),
    _stage("flip-p", {"kind": "flip", "params": {"p": 1.5}}, "augment[0].params", "p", "[0, 1]"),
    _stage("flip-unknown", {"kind": "flip", "params": {"prob": 0.5}}, "augment[0].params.prob", "['p']"),
    _stage("re-scale-int", {"kind": "random_erasing", "params": {"scale": 5}}, "augment[0].params", "scale",
           "pair of finite numbers"),
    _stage("re-scale-order", {"kind": "random_erasing", "params": {"scale": [0.5, 0.1]}}, "scale",
           "0 < s_min <= s_max <= 1"),
    _stage("re-scale-triple", {"kind": "random_erasing", "params": {"scale": [0.1, 0.2, 0.3]}}, "scale",
           "pair of finite numbers"),
    _stage("re-scale-str", {"kind": "random_erasing", "params": {"scale": "big"}}, "scale", "pair of finite numbers"),
    _stage("re-ratio", {"kind": "random_erasing", "params": {"ratio": "x"}}, "ratio", "pair of finite numbers"),
    _stage("re-value", {"kind": "random_erasing", "params": {"value": "blue"}}, "value", "zero", "uniform", "normal"),
    _stage("re-p", {"kind": "random_erasing", "params": {"p": 2}}, "augment[0].params", "p", "[0, 1]"),
    _stage("re-unknown", {"kind": "random_erasing", "params": {"area": 0.2}}, "augment[0].params.area",
           "['p', 'ratio', 'scale', 'value']"),
    _stage("re-mapping", {"kind": "random_erasing", "soft": True, "mapping": {"type": "polynomial", "p_min": 5}},
           "augment[0].mapping", "p_min", "k"),
    _stage("ta-op", {"kind": "trivial_augment", "params": {"ops": ["Foo"]}}, "augment[0].params", "Identity",
           "Rotate"),
    _stage("ta-ops-str", {"kind": "trivial_augment", "params": {"ops": "Rotate"}}, "augment[0].params",
           "sequence of op names"),
    _stage("ta-bins", {"kind": "trivial_augment", "params": {"num_magnitude_bins": 0}}, "num_magnitude_bins",
           ">= 2"),
    _stage("ta-fill", {"kind": "trivial_augment", "params": {"fill": "x"}}, "fill", "a number"),
    _stage("ta-unknown", {"kind": "trivial_augment", "params": {"magnitude": 3}}, "augment[0].params.magnitude",
           "['fill', 'num_magnitude_bins', 'ops']"),
    _stage("ta-preset", {"kind": "trivial_augment", "mapping": "nope"}, "augment[0].mapping", "polynomial_chance",
           "exact_hvs"),
    _stage("ta-mapping-type", {"kind": "trivial_augment", "soft": True, "mapping": {"type": "zzz"}},
           "augment[0].mapping", "known types", "polynomial"),
    _stage("noise-sigma", {"kind": "noise", "params": {"sigma_max": -1}}, "sigma_max", "> 0"),
    _stage("noise-patch", {"kind": "noise", "params": {"patch_frac": 2}}, "patch_frac", "(0, 1]"),
    _stage("noise-unknown", {"kind": "noise", "params": {"sigma": 1}}, "augment[0].params.sigma",
           "['patch_frac', 'sigma_max']"),
    _stage("softcrop-none", {"kind": "soft_crop"}, "augment[0].params", "exactly one of sigma_px"),
    _stage("softcrop-negative", {"kind": "soft_crop", "params": {"sigma_px": -3}}, "sigma_px", "> 0"),
    _stage("softcrop-both", {"kind": "soft_crop", "params": {"sigma_px": 3, "sigma_frac": 0.1}},
           "exactly one of sigma_px"),
    _stage("softcrop-background", {"kind": "soft_crop", "params": {"sigma_px": 3, "background": "red"}},
           "background", "zero", "mean"),
]

SET_CASES = [Case(f"set-{i}", "set", s, exp) for i, (s, exp) in enumerate([
    (["lr=fast"], ("'lr'", "finite number > 0")),
    (["lr=.inf"], ("'lr'", "finite number > 0")),
    (["weight_decay=.nan"], ("'weight_decay'", "finite number >= 0")),
    (["batch_size=1"], ("'batch_size'", ">= 2")),
    (["epochs.x=1"], ("--set epochs.x", "has no sub-fields", "model_kwargs")),
    (["lr.value=1"], ("--set lr.value", "has no sub-fields")),
    (["foo=1"], ("--set foo", "unknown config field", "allowed fields", "epochs")),
    (["augment.9.soft=true"], ("--set augment.9.soft", "not a valid list index", "0..2")),
    (["augment.x=1"], ("--set augment.x", "not a valid list index", "0..2")),
    (["augment.0.bogus=1"], ("augment[0].bogus", "allowed keys")),
    (["augment.2.params.ops.0=Foo"], ("augment[2].params", "sequence of op names", "Identity")),
    (["augment.0.kind.x=1"], ("--set augment.0.kind.x", "is a string", "has no sub-field", "set augment.0.kind=VALUE")),
    (["model_kwargs.foo=1"], ("model_kwargs.foo", "['widths']")),
    (["model_kwargs.widths.5=8"], ("--set model_kwargs.widths.5", "not a valid list index", "0..2")),
    (["epochs..x=1"], ("--set epochs..x", "empty part")),
    (["noequals"], ("--set expects key=value", "noequals")),
    (["=5"], ("--set expects key=value",)),
    (["lr=[1"], ("--set lr", "cannot parse value")),
    (["augment.2.params.num_magnitude_bins=1e0"], ("num_magnitude_bins", ">= 2")),  # 1e0 read as the number 1.0
    (["augment.0.params.p=1e3"], ("augment[0].params", "p", "[0, 1]")),  # 1e3 is a number, out of range
    (["augment=flip"], ("'augment'", "a list of stages")),
])]

CLI_CASES = [
    Case("config-not-found", "cli", "missing", ("config file not found",)),
    Case("config-dir", "cli", "dir", ("config file not found", "is a directory")),
    Case("config-yaml", "cli", "yaml", ("is not valid YAML",)),
    Case("config-list", "cli", "list", ("must hold a mapping of fields",)),
    Case("config-binary", "cli", "binary", ("cannot be read",)),
    Case("out-is-file", "cli", "out-file", ("is an existing file, not a directory", "another --out")),
    Case("out-in-file", "cli", "out-in-file", ("lies inside", "which is an existing file")),
    Case("resume-nothing", "cli", "resume-missing", ("no checkpoint at", "does not exist", "without --resume")),
    Case("resume-empty-dir", "cli", "resume-empty", ("no checkpoint at", "holds no run to resume")),
    Case("evaluate-missing", "cli", "evaluate-missing", ("run directory", "does not exist")),
    Case("evaluate-untrained", "cli", "evaluate-untrained", ("no trained model", "model.pt", "status: missing")),
    Case("seed-negative", "cli", "seed", ("--seed must be an integer >= 0",)),
]

GRID = {"grid": "micro", "dataset": "mnist5k", "data_source": None, "seeds": [0], "run_arms": ["a"],
        "base": {"n_per_class": 6, "model": "smallnet", "model_kwargs": {"widths": [8, 8, 8]}, "epochs": 1,
                 "batch_size": 16, "lr": 0.05},
        "evaluation": {"corruptions": False, "op_bins": []},
        "arms": {"a": {"factors": {"label_type": "hard", "family": "none"}, "augment": ["flip"]}}}


def _grid_with(path: str, value, delete: bool = False) -> dict:
    g = json.loads(json.dumps(GRID))
    *parents, last = path.split(".")
    cur = g
    for p in parents:
        cur = cur[p]
    if delete:
        del cur[last]
    else:
        cur[last] = value
    return g


GRID_CASES = [Case(f"grid-{path}-{i}", "grid", (path, value), exp) for i, (path, value, exp) in enumerate([
    ("fit", {"fallback": "bogus"}, ("'fit.fallback'", "per-op", "polynomial", "ssim", "proxy")),
    ("fit", {"n_boot": 0}, ("'fit.n_boot'", ">= 10")),
    ("fit", {"proxy_epochs": "x"}, ("'fit.proxy_epochs'", ">= 1")),
    ("fit", {"proxy_n_per_class": 0}, ("'fit.proxy_n_per_class'", ">= 1 or null")),
    ("fit", {"n_images": 1.5}, ("'fit.n_images'", ">= 1")),
    ("fit", {"unknown": 1}, ("'fit.unknown'", "allowed", "fallback")),
    ("seeds", [], ("'seeds'", "distinct ints >= 0")),
    ("seeds", [0, 0], ("'seeds'", "distinct ints >= 0")),
    ("seeds", [-1], ("'seeds'", "distinct ints >= 0")),
    ("run_arms", ["nope"], ("'run_arms[0]'", "an arm defined under 'arms'", "['a']")),
    ("run_arms", [], ("'run_arms'", "non-empty list")),
    ("dataset", "imagenet", ("'dataset'", "mnist5k")),
    ("arms.a.factors.label_type", "medium", ("arms.a.factors.label_type", "hard", "soft", "ls")),
    ("arms.a.factors.family", None, ("arms.a.factors.family", "family name")),
    ("arms.a.bogus", 1, ("arms.a.bogus", "allowed keys")),
    ("arms.a.augment", [{"kind": "blur"}], ("arm 'a'", "augment[0].kind", "trivial_augment")),
    ("arms.a.augment", [{"kind": "random_erasing", "params": {"scale": 5}}], ("arm 'a'", "scale", "pair")),
    ("arms.a.augment", [{"kind": "trivial_augment", "mapping": "fitted:foo"}], ("fitted:hvs", "fitted:proxy")),
    ("arms.a.set", {"lr": 1e400}, ("arm 'a'", "'lr'", "finite")),
    ("base.lr", math.inf, ("'lr'", "finite number > 0")),
    ("base.batch_size", 1, ("'batch_size'", ">= 2")),
    ("base.model_kwargs", {"foo": 1}, ("model_kwargs.foo", "['widths']")),
    ("base.seed", 3, ("'base.seed'", "absent")),
    ("base.epoch", 3, ("'epoch'", "allowed fields")),
    ("bogus", 1, ("'bogus'", "allowed top-level keys")),
    ("evaluation.op_bins", [40], ("'op_eval_bins'", "0..30")),
    ("evaluation.unknown", 1, ("'evaluation.unknown'", "allowed")),
    ("reference_comparable", "yes", ("'reference_comparable'", "true or false")),
    ("arms", {}, ("'arms'", "non-empty mapping")),
])] + [
    Case("grid-missing-arms", "grid", ("arms", None, "delete"), ("'arms' is required",)),
    Case("grid-yaml", "grid-text", "grid: [", ("is not valid YAML",)),
    Case("grid-list", "grid-text", "- 1\n", ("must hold a mapping of params",)),
    Case("grid-not-found", "grid-text", None, ("grid file not found",)),
]

#: broken files of a trained run: (file, how it is broken, command that reads it, expected error parts)
FILE_CASES = [Case(f"file-{name}-{how}", "file", (name, how, command), exp) for name, how, command, exp in [
    ("checkpoint.pt", "truncated", "resume", ("checkpoint.pt", "training checkpoint", "truncated or corrupt",
                                              "delete")),
    ("checkpoint.pt", "random", "resume", ("checkpoint.pt", "truncated or corrupt", "delete")),
    ("checkpoint.pt", "empty", "resume", ("checkpoint.pt", "the file is empty", "delete")),
    ("checkpoint.pt", "json", "resume", ("checkpoint.pt", "truncated or corrupt", "delete")),
    ("checkpoint.pt", "torch-dict", "resume", ("checkpoint.pt", "lacks", "model", "delete")),
    ("checkpoint.pt", "torch-list", "resume", ("checkpoint.pt", "lacks", "delete")),
    ("checkpoint.pt", "directory", "resume", ("checkpoint.pt", "it is a directory", "delete")),
    ("model.pt", "truncated", "evaluate", ("model.pt", "model weights", "truncated or corrupt", "--resume")),
    ("model.pt", "random", "evaluate", ("model.pt", "truncated or corrupt", "--resume")),
    ("model.pt", "empty", "evaluate", ("model.pt", "the file is empty", "--resume")),
    ("model.pt", "other-model", "evaluate", ("model.pt", "do not fit", "--resume")),
    ("provenance.json", "truncated", "evaluate", ("provenance.json", "not valid JSON", "model_input")),
    ("provenance.json", "empty", "evaluate", ("provenance.json", "the file is empty")),
    ("provenance.json", "no-model-input", "evaluate", ("provenance.json", "model_input")),
    ("config.yaml", "yaml", "evaluate", ("config.yaml", "not valid YAML")),
    ("config.yaml", "bad-field", "evaluate", ("config.yaml", "'epochs'", ">= 1")),
    ("status.json", "truncated", "rerun", ("status.json", "not valid JSON", "already holds a run", "--resume")),
    ("status.json", "unknown-status", "rerun", ("status.json", "'done'", "already holds a run")),
    ("hvs.json", "truncated", "stage-train", ("hvs.json", "fitted mapping set", "not valid JSON",
                                              "dvc repro -f fit_mappings")),
    ("hvs.json", "empty", "stage-train", ("hvs.json", "the file is empty", "fit_mappings")),
    ("hvs.json", "not-a-mapping", "stage-train", ("hvs.json", "not a valid mapping set", "fit_mappings")),
    ("hvs.json", "list", "stage-train", ("hvs.json", "JSON list", "fit_mappings")),
]]

_ROWS = [{"metric": "accuracy", "corruption": None, "severity": None, "value": 0.5},
         {"metric": "nll", "corruption": None, "severity": None, "value": 1.2}]

#: broken result files at the results stage: (what is written, expected status, expected reason parts)
RESULT_CASES = [Case(f"results-{i}-{status}", "results", files, (status, *exp)) for i, (files, status, exp) in
                enumerate([
    ({"eval/metrics.json": {"rows": []}}, "corrupt", ("metrics.json", "'rows' list is empty")),
    ({"eval/metrics.json": {"notes": []}}, "corrupt", ("metrics.json", "no 'rows' list")),
    ({"eval/metrics.json": {"rows": {}}}, "corrupt", ("metrics.json", "'rows' is a dict")),
    ({"eval/metrics.json": "{not json"}, "corrupt", ("metrics.json", "not valid JSON")),
    ({"eval/metrics.json": ""}, "corrupt", ("metrics.json", "the file is empty")),
    ({"eval/metrics.json": [1, 2]}, "corrupt", ("metrics.json", "JSON list")),
    ({"eval/metrics.json": {"rows": [{"metric": "accuracy", "value": 0.5}]}}, "corrupt", ("metrics.json", "row 0")),
    ({"eval/metrics.json": {"rows": [{**_ROWS[0], "value": "high"}]}}, "corrupt", ("metrics.json", "not a number")),
    ({"eval/metrics.json": {"rows": [{**_ROWS[0], "metric": ""}]}}, "corrupt", ("metrics.json", "metric name")),
    ({"eval/metrics.json": {"rows": [{**_ROWS[0], "severity": "3"}]}}, "corrupt", ("metrics.json", "severity")),
    ({"eval/metrics.json": {"rows": [_ROWS[0], {**_ROWS[1], "value": math.nan}]}}, "failed",
     ("metrics.json", "non-finite value nan for metric nll")),
    ({"eval/metrics.json": None}, "missing", ("metrics.json", "missing", "says complete")),
    ({"eval/status.json": "{", "eval/metrics.json": {"rows": _ROWS}}, "corrupt", ("status.json", "not valid JSON")),
    ({"eval/status.json": "", "eval/metrics.json": {"rows": _ROWS}}, "corrupt", ("status.json", "empty")),
    ({"eval/status.json": {"status": "done"}}, "corrupt", ("status.json", "'done'")),
    ({"eval/status.json": {"state": "complete"}}, "corrupt", ("status.json", "None")),
    ({"eval/status.json": None, "eval/metrics.json": None, "train/status.json": None}, "missing", ("never ran",)),
    ({"eval/status.json": None, "train/status.json": {"status": "failed"}}, "failed",
     ("status.json", "no reason recorded")),
    ({"eval/status.json": {"status": "failed", "reason": "non-finite loss at epoch 3"}}, "failed",
     ("non-finite loss at epoch 3",)),
    ({"eval/status.json": None, "train/status.json": "garbage"}, "corrupt", ("train", "status.json", "not valid JSON")),
    ({"eval/status.json": None, "train/status.json": {"status": "running", "epoch": 1}}, "running",
     ("trained up to epoch 1", "not evaluated")),
])]

CATALOGUE = CONFIG_CASES + SET_CASES + CLI_CASES + GRID_CASES + FILE_CASES + RESULT_CASES


def test_catalogue_has_at_least_100_distinct_bad_inputs():
    ids = [c.id for c in CATALOGUE]
    assert len(ids) == len(set(ids)) and len(ids) >= 100, len(ids)


def _clear_error(err: str, expect: tuple[str, ...], prefix: str) -> None:
    assert "Traceback" not in err, err
    assert err.startswith(prefix), err
    assert len(err.strip().splitlines()) == 1, err  # one line, no stack
    for part in expect:
        assert part in err, f"{part!r} not in {err!r}"


# ------------------------------------------------------------------------------------------ config, --set, CLI
@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.id)
def test_bad_config_file_is_one_clear_error_and_writes_nothing(case, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(case.data))
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 2
    _clear_error(capsys.readouterr().err, (str(cfg), *case.expect), "softbench train: error:")
    assert not out.exists()


@pytest.mark.parametrize("case", SET_CASES, ids=lambda c: c.id)
def test_bad_set_override_is_one_clear_error_and_writes_nothing(case, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    args = ["train", "--config", str(cfg), "--out", str(out), "--no-progress"]
    for s in case.data:
        args += ["--set", s]
    assert main(args) == 2
    _clear_error(capsys.readouterr().err, case.expect, "softbench train: error:")
    assert not out.exists()


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_bad_command_line_is_one_clear_error_and_writes_nothing(case, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    how = case.data
    command = "train"
    if how == "missing":
        cfg = tmp_path / "nope.yaml"
    elif how == "dir":
        cfg = tmp_path / "d.yaml"
        cfg.mkdir()
    elif how == "yaml":
        cfg.write_text("epochs: [1\n")
    elif how == "list":
        cfg.write_text("- 1\n- 2\n")
    elif how == "binary":
        cfg.write_bytes(b"\xff\xfe\x00\x81")
    elif how == "out-file":
        out.write_text("keep me")
    elif how == "out-in-file":
        (tmp_path / "f").write_text("keep me")
        out = tmp_path / "f" / "run"
    before = sorted(p.name for p in tmp_path.iterdir())
    if how == "resume-empty":
        out.mkdir()
        before = sorted(p.name for p in tmp_path.iterdir())
    args = ["train", "--config", str(cfg), "--out", str(out), "--no-progress"]
    if how.startswith("resume"):
        args.append("--resume")
    if how.startswith("evaluate"):
        command = "evaluate"
        if how == "evaluate-untrained":
            out.mkdir()
            before = sorted(p.name for p in tmp_path.iterdir())
        args = ["evaluate", str(out), "--no-progress"]
    if how == "seed":
        args += ["--seed", "-1"]
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and all(e in err for e in case.expect), err
        assert not out.exists()
        return
    assert main(args) == 2
    _clear_error(capsys.readouterr().err, case.expect, f"softbench {command}: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if how == "out-file":
        assert out.read_text() == "keep me"
    if how in ("resume-empty", "evaluate-untrained"):
        assert list(out.iterdir()) == []


def test_scientific_notation_is_a_number_in_config_set_and_grid(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lr: 1e-3\nweight_decay: 5E-4\nmomentum: 9e-1\n")
    c = load_config(cfg, ["label_smoothing=1e-1", "augment=[]"])
    assert (c.lr, c.weight_decay, c.momentum, c.label_smoothing) == (1e-3, 5e-4, 0.9, 0.1)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(GRID).replace("lr: 0.05", "lr: 5e-2"))
    assert "5e-2" in params.read_text()
    assert arm_config(load_grid(params), "a", 0).lr == 0.05


# ------------------------------------------------------------------------------------------ grids
@pytest.mark.parametrize("case", GRID_CASES, ids=lambda c: c.id)
def test_bad_grid_is_one_clear_error_before_any_stage_runs(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "params.yaml"
    if case.kind == "grid-text":
        if case.data is not None:
            params.write_text(case.data)
    else:
        path, value, *delete = case.data
        params.write_text(yaml.safe_dump(_grid_with(path, value, delete=bool(delete))))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["stage", "results", "--params", str(params), "--no-progress"]) == 2
    _clear_error(capsys.readouterr().err, case.expect, "softbench stage results: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no reports/, no runs/


# ------------------------------------------------------------------------------------------ broken run files
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted tiny run (to compare kills against and to break copies of), its config file,
    the weights of another model and the child-process script."""
    root = tmp_path_factory.mktemp("reference")
    cfg = root / "c.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    (root / "child.py").write_text(_CHILD)
    with torch_threads(1):  # the thread count of `softbench train` (its --threads default) that it is compared with
        train_and_evaluate(load_config(cfg), root / "ref", progress=False)
    torch.save(build_model("smallnet", 10, widths=(4, 4, 4)).state_dict(), root / "other_model.pt")
    return root


def _sets(d: dict) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in d.items()]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _break(path: Path, how: str, reference: Path) -> None:
    good = path.read_bytes() if path.is_file() else b""
    if path.is_file() and how != "directory":
        path.unlink()
    if how == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif how == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "json":
        path.write_text('{"model": 1}')
    elif how == "torch-dict":
        torch.save({"epoch": 1}, path)
    elif how == "torch-list":
        torch.save([1, 2, 3], path)
    elif how == "directory":
        path.unlink()
        path.mkdir()
    elif how == "other-model":
        shutil.copy(reference / "other_model.pt", path)
    elif how == "no-model-input":
        d = json.loads(good)
        d.pop("model_input")
        path.write_text(json.dumps(d))
    elif how == "yaml":
        path.write_text("epochs: [2\n")
    elif how == "bad-field":
        path.write_text(good.decode().replace("epochs: 3", "epochs: 0"))
    elif how == "unknown-status":
        path.write_text('{"status": "done"}')
    elif how == "not-a-mapping":
        path.write_text('{"type": "polynomial", "p_min": 0.1}')
    elif how == "list":
        path.write_text("[1, 2]")
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("case", FILE_CASES, ids=lambda c: c.id)
def test_broken_run_file_is_an_error_naming_it_and_changes_nothing(case, reference, tmp_path, monkeypatch, capsys):
    name, how, command = case.data
    if command == "stage-train":
        monkeypatch.chdir(tmp_path)
        grid = _grid_with("arms.a.augment", [{"kind": "trivial_augment", "soft": True, "mapping": "fitted:hvs"}])
        Path("params.yaml").write_text(yaml.safe_dump(grid))
        target = fitted_mapping_path("mnist5k", "hvs")
        target.parent.mkdir(parents=True)
        target.write_text("{}")
        _break(target, how, reference)
        before = sorted(str(p) for p in tmp_path.rglob("*"))
        assert main(["stage", "train", "--arm", "a", "--seed", "0", "--no-progress"]) == 2
        _clear_error(capsys.readouterr().err, case.expect, "softbench stage train: error:")
        assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no run directory, no lone stamp
        assert not train_dir("a", 0).exists()
        return
    run = tmp_path / "run"
    shutil.copytree(reference / "ref", run)
    _break(run / name, how, reference)
    before = _snapshot(run)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    if command == "evaluate":
        args = ["evaluate", str(run), "--no-progress"]
    else:
        args = ["train", "--config", str(cfg), "--out", str(run), "--no-progress"]
        if command == "resume":
            args.append("--resume")
    assert main(args) == 2
    _clear_error(capsys.readouterr().err, case.expect, f"softbench {args[0]}: error:")
    assert _snapshot(run) == before
    assert not list(run.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------ results stage
def _write(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))


@pytest.mark.parametrize("case", RESULT_CASES, ids=lambda c: c.id)
def test_broken_result_file_is_listed_with_file_and_reason(case, tmp_path):
    grid = _validate(GRID, "micro")
    edir, tdir = eval_dir("a", 0, tmp_path), train_dir("a", 0, tmp_path)
    files = {"eval/status.json": {"status": "complete", "epoch": 1}, "eval/metrics.json": {"rows": _ROWS},
             "train/status.json": {"status": "running", "epoch": 1}, **case.data}
    for key, content in files.items():
        if content is not None:
            _write((edir if key.startswith("eval/") else tdir) / key.split("/", 1)[1], content)
    df = collect_results(grid, tmp_path)
    status, *reason = case.expect
    assert df["run_id"].tolist() == ["a-s0"] and df["status"].tolist() == [status]
    assert df["metric"].tolist() == [""] and np.isnan(df["value"].iloc[0])
    for part in reason:
        assert part in df["reason"].iloc[0], (part, df["reason"].iloc[0])


def test_results_stage_lists_every_broken_run_and_a_run_deleted_from_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    grid = _validate({**GRID, "seeds": [0, 1, 2, 3]}, "micro")
    Path("params.yaml").write_text(yaml.safe_dump({**GRID, "seeds": [0, 1, 2, 3]}))
    for seed, metrics in ((0, {"rows": _ROWS}), (1, {"rows": []}), (2, "")):  # seed 3 never ran
        _write(eval_dir("a", seed) / "status.json", {"status": "complete"})
        _write(eval_dir("a", seed) / "metrics.json", metrics)
    assert main(["stage", "results", "--no-progress"]) == 0
    err = capsys.readouterr().err
    df = pd.read_csv("reports/results.csv", keep_default_na=False)
    st = df.drop_duplicates("run_id").set_index("run_id")
    assert st["status"].to_dict() == {"a-s0": "complete", "a-s1": "corrupt", "a-s2": "corrupt", "a-s3": "missing"}
    for rid in ("a-s1", "a-s2", "a-s3"):
        assert f"{rid}: {st.loc[rid, 'status']}: " in err and st.loc[rid, "reason"]
    assert (df["run_id"] == "a-s0").sum() == 2 and (df["run_id"] == "a-s1").sum() == 1
    trimmed = pd.read_csv("reports/results.csv")
    trimmed = trimmed[trimmed["run_id"] != "a-s0"]  # a run's rows deleted by hand
    full = account_for_grid(trimmed, grid)
    row = full[full["run_id"] == "a-s0"]
    assert len(row) == 1 and row["status"].iloc[0] == "missing" and "no row in the results table" in row["reason"].iloc[0]


# ------------------------------------------------------------------------------------------ the lock
_CHILD = """
import os, signal, sys, time
import harness.io as hio, harness.runs as hruns
from harness.cli import main

kill_at, phase, cfg, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
real = hio.atomic_write_bytes
count = 0

def write(path, data):
    # mid/after: SIGKILL in the middle of, or right after, the kill_at-th atomic write into the run
    # directory; slow: pause after every such write (a long-running writer)
    global count
    if os.path.dirname(os.path.abspath(path)) != os.path.abspath(out):
        return real(path, data)
    count += 1
    if count == kill_at and phase == "mid":
        with hio.atomic_open(path) as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    real(path, data)
    if count == kill_at and phase == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    if phase == "hold" and os.path.basename(path) == "checkpoint.pt":
        time.sleep(300)  # a long-running writer, holding the lock, until the test kills it

hio.atomic_write_bytes = hruns.atomic_write_bytes = write
sys.exit(main(["train", "--config", cfg, "--out", out, "--no-progress"] + sys.argv[5:]))
"""


def _values(run: Path) -> dict:
    rows = json.loads((run / "metrics.json").read_text())["rows"]
    return {(r["metric"], r["corruption"], r["severity"]): r["value"] for r in rows}


def _log(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "epochs.csv").drop(columns="time_s")


def _child(reference: Path, out: Path, kill_at: int = 0, phase: str = "none", *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(reference / "child.py"), str(kill_at), phase,
                             str(reference / "c.yaml"), str(out), *extra], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _recover_and_check(reference: Path, run: Path) -> None:
    """Rerun the killed run with --resume (a plain rerun if the kill came before its directory existed)
    and check it equals the uninterrupted run."""
    args = ["train", "--config", str(reference / "c.yaml"), "--out", str(run), "--no-progress"]
    assert main(args + (["--resume"] if run.exists() else [])) == 0
    assert read_status(run)["status"] == "complete"
    assert _values(run) == _values(reference / "ref")
    pd.testing.assert_frame_equal(_log(run), _log(reference / "ref"))
    assert not list(run.glob(".*.tmp")) and (run / LOCK_FILE).read_text() == ""


def test_sigkill_at_random_points_then_resume_gives_identical_metrics(reference, tmp_path, capsys):
    # a 3-epoch run makes 17 atomic writes into its directory: 3 at the start, 3 per epoch, 5 at the end
    every = [(write, phase) for write in range(1, 18) for phase in ("mid", "after")]
    fixed = [(5, "mid"), (2, "after")]  # mid-way through the first checkpoint (a .tmp is left behind);
    # before the first checkpoint (the resume starts the run afresh)
    rest = [p for p in every if p not in fixed]
    points = fixed + random.Random(13).sample(rest, min(max(KILLS - 2, 0), len(rest)))
    runs = [tmp_path / f"k{i}" for i in range(len(points))]
    for batch in range(0, len(points), 2):  # two killed runs at a time
        procs = [_child(reference, runs[i], *points[i]) for i in range(batch, min(batch + 2, len(points)))]
        for proc in procs:
            proc.communicate(timeout=300)
            assert proc.returncode == -signal.SIGKILL
    assert list(runs[0].glob(".checkpoint.pt.*.tmp"))  # litter of the killed write ...
    for run in runs:
        _recover_and_check(reference, run)  # ... removed by the resume
    capsys.readouterr()
    with capsys.disabled():
        print(f"\nkill points (write number, phase) killed and resumed identically: {points}")


def test_sigkill_at_a_random_time_then_resume_gives_identical_metrics(reference, tmp_path, capsys):
    rng = random.Random(7)
    run = tmp_path / "t"
    proc = _child(reference, run)
    deadline = time.time() + 120
    while not (run / LOCK_FILE).is_file() or not (run / LOCK_FILE).read_text():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 1.0))  # within the training (about 1-2 s here)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    _recover_and_check(reference, run)
    capsys.readouterr()


def test_second_writer_gets_the_lock_error_and_changes_nothing(reference, tmp_path, capsys):
    """A run that holds the directory (paused after its first checkpoint); a second ``softbench train``
    on it (another seed and length, as in the issue's repro) is refused naming the holder and changes
    nothing; the holder is then killed, which releases the lock, and the run resumes to the
    uninterrupted result."""
    run = tmp_path / "w"
    first = _child(reference, run, 0, "hold")
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").is_file():  # the first writer is training
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.01)
    second = _child(reference, run, 0, "none", "--seed", "1", "--set", "epochs=2")
    _, err = second.communicate(timeout=300)
    assert first.poll() is None
    assert second.returncode == 2 and "Traceback" not in err, err
    assert f"run {run} is being written by PID {first.pid} on host" in err, err
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 0
    assert lock_holder(run)["pid"] == first.pid
    with pytest.raises(RunBusyError, match=rf"PID {first.pid} on host \S+ \(since .*, train \(seed 0\)\)"):
        with run_lock(run):  # the same from this process
            pass
    first.send_signal(signal.SIGKILL)  # a killed writer never blocks the next one
    first.communicate(timeout=60)
    with run_lock(run) as held, run_lock(run):  # re-entrant within one process
        assert held == run and lock_holder(run)["pid"] == os.getpid()
    assert lock_holder(run) is None  # released: no holder recorded
    _recover_and_check(reference, run)
    capsys.readouterr()


def test_concurrent_writers_one_wins_and_the_directory_is_consistent(reference, tmp_path):
    outcomes = []
    for trial in range(WRITERS):
        run = tmp_path / f"c{trial}"
        procs = [_child(reference, run, 0, "none", "--seed", str(seed), "--set", f"epochs={2 + seed}")
                 for seed in (0, 1)]
        results = [(p.returncode, err) for p in procs for _out, err in [p.communicate(timeout=300)]]
        codes = sorted(rc for rc, _ in results)
        assert codes == [0, 2], results
        winner = [seed for seed, (rc, _) in zip((0, 1), results) if rc == 0][0]
        loser_err = [err for rc, err in results if rc == 2][0]
        assert "Traceback" not in loser_err
        assert "is being written by PID" in loser_err or "already holds a run" in loser_err, loser_err
        outcomes.append("lock" if "is being written" in loser_err else "existing")
        config = yaml.safe_load((run / "config.yaml").read_text())
        prov = json.loads((run / "provenance.json").read_text())
        ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
        assert config["seed"] == prov["seed"] == winner and config["epochs"] == 2 + winner
        assert len(pd.read_csv(run / "epochs.csv")) == 2 + winner and ckpt["epoch"] == 2 + winner
        assert ckpt["training_hash"] == load_config(run / "config.yaml").training_hash()
        assert read_status(run)["status"] == "complete" and (run / "metrics.json").is_file()
    assert len(outcomes) == WRITERS
    print(f"\nconcurrent-writer trials, consistent, loser refused by: {outcomes}")
