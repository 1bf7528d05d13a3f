"""Experiment grids: the plain-data description of a multi-seed experiment, validated once.

A grid (``grids/<name>.yaml``; the active one is ``params.yaml``, read by every DVC stage) names a
dataset, the seeds, a ``base`` training config shared by every arm and the ``arms``. Each arm is
``{factors, augment, set, reference}``: its factors (``label_type`` hard/soft/ls and ``family``
are required, others are free-form and become columns of the results table), its augmentation
stages (``harness.config`` stage syntax; a trivial_augment ``mapping`` may be ``"fitted:<source>"``
for a mapping fitted by the pipeline's ``fit_mappings`` stage), other TrainConfig fields in ``set``,
and optionally the name of the matching row of the paper's reference table.

``arm_config(grid, arm, seed)`` turns one cell into a validated :class:`~harness.config.TrainConfig`;
``use_grid(name)`` makes ``grids/<name>.yaml`` the active ``params.yaml`` (atomically).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import mappings
from harness.config import ConfigError, TrainConfig, apply_overrides, load_yaml, yaml_error_text
from harness.corruptions.sources import CORRUPTION_SOURCES, OFFICIAL_SCORED_DATASETS
from harness.datasets import DATASET_SPECS, DATASETS
from harness.execution import Execution, parse_execution
from harness.pipeline_builder import build_pipeline
from harness.stats_spec import validate_stats_spec
from harness.io import FileFormatError, atomic_write_text, read_json

__all__ = ["Grid", "load_grid", "arm_config", "use_grid", "list_grids", "run_id", "train_dir", "eval_dir",
           "GRIDS_DIR", "FITTED_ROOT", "RUNS_ROOT", "CORRUPTED_ROOT", "fitted_mapping_path", "LABEL_TYPES"]

GRIDS_DIR = Path("grids")
FITTED_ROOT = Path("datasets/fitted")
#: allowed ``fit.fallback`` values: what an op without human data is fitted from (harness.fit_mappings)
FALLBACKS: tuple[str, ...] = ("per-op", "polynomial", "ssim", "proxy")
RUNS_ROOT = Path("runs")
CORRUPTED_ROOT = Path("datasets/corrupted")  # the pipeline's corrupted evaluation sets (stage corruptions)
LABEL_TYPES = ("hard", "soft", "ls")
FITTED_SOURCES = ("hvs", "proxy")  # mapping sets the pipeline fits (stages fit_mappings, proxy_accuracy)
_TOP_KEYS = {"grid", "description", "dataset", "data_source", "download", "datasets_allowed", "seeds",
             "run_arms", "base", "evaluation", "arms", "reference_comparable", "fit", "stats", "report",
             "execution"}
_REQUIRED = ("grid", "dataset", "seeds", "run_arms", "base", "arms")
_ARM_KEYS = {"factors", "augment", "set", "reference", "description"}
_EVAL_KEYS = {"corruption_n": "corruption_n", "corruption_severities": "corruption_severities",
              "op_bins": "op_eval_bins", "corruptions": "corruptions", "eval_batch_size": "eval_batch_size"}
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_FIT_KEYS = {"n_images", "n_boot", "proxy_epochs", "proxy_n_per_class", "fallback"}
#: ``download``: auto = the prepare stage fetches a missing dataset (and the corruptions stage the official
#: corruption files when asked for); never = local copies only
DOWNLOAD_MODES = ("auto", "never")
# ``evaluation.corruption_source`` (harness.corruptions.sources): generated = reimplemented corruptions (default);
# official = the released CIFAR-10-C / CIFAR-100-C files (fetched on first use with ``download: auto``), scored
# for cifar10 / cifar100 only


def _fail(where: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"params field {where!r} must be {allowed}, got {value!r}")


def run_id(arm: str, seed: int) -> str:
    """``<arm>-s<seed>``: the run's name in the results table (and DVC's ``train@<arm>-<seed>``)."""
    return f"{arm}-s{seed}"


def train_dir(arm: str, seed: int, root: str | Path = RUNS_ROOT) -> Path:
    """Training output of one run: ``runs/train/<arm>/s<seed>``."""
    return Path(root) / "train" / arm / f"s{seed}"


def eval_dir(arm: str, seed: int, root: str | Path = RUNS_ROOT) -> Path:
    """Evaluation output of one run: ``runs/eval/<arm>/s<seed>``."""
    return Path(root) / "eval" / arm / f"s{seed}"


def fitted_mapping_path(dataset: str, source: str, root: str | Path = FITTED_ROOT) -> Path:
    """Where the pipeline's fit stage writes the ``source`` mapping set of ``dataset``."""
    return Path(root) / dataset / source / f"{source}.json"


@dataclass(frozen=True)
class Grid:
    """A validated experiment grid (see the module docstring); ``raw`` is the parsed YAML."""

    name: str
    dataset: str
    data_source: str | None
    seeds: tuple[int, ...]
    run_arms: tuple[str, ...]
    base: dict
    evaluation: dict
    arms: dict
    reference_comparable: bool
    fit: dict
    stats: dict
    raw: dict = field(repr=False, default_factory=dict)
    download: str = "auto"
    corruption_source: str = "generated"
    #: where the run matrix runs (``harness.execution``); never changes a result
    execution: Execution = field(default_factory=Execution)

    def reference_mismatch(self) -> list[str]:
        """How the trained runs depart from the paper's protocol (METHOD §4.1-4.5); empty when the
        report may show the paper's numbers beside them (with ``reference_comparable: true``)."""
        out = []
        if self.dataset not in ("cifar10", "cifar100", "tinyimagenet"):
            out.append(f"dataset {self.dataset!r} is not one of the paper's")
        configs = {arm: arm_config(self, arm, self.seeds[0], resolve_fitted=False) for arm in self.run_arms}
        for arm, cfg in configs.items():  # the reference fills erased boxes with unclamped N(0, 1) noise (METHOD §2.3)
            for stage in cfg.augment:
                if stage.kind == "random_erasing" and stage.params.get("value", "zero") != "normal":
                    out.append(f"arm {arm}: random_erasing fills with {stage.params.get('value', 'zero')!r} "
                               "(paper: 'normal', per-pixel N(0, 1))")
        cfg = configs[self.run_arms[0]]  # base settings are shared; one arm shows them
        if not cfg.model_kwargs.get("reference_quirks", False):
            out.append("model_kwargs.reference_quirks is not true (paper: conv biases, final BatchNorm "
                       "momentum 0.9; METHOD §4.2)")
        for field_name, want in (("model", "wrn28_4"), ("epochs", 300), ("batch_size", 128), ("lr", 0.1),
                                 ("n_per_class", None)):
            got = getattr(cfg, field_name)
            if got != want:
                out.append(f"{field_name} = {got!r} (paper: {want!r})")
        if cfg.corruption_n is not None:
            out.append(f"corruptions on a {cfg.corruption_n}-image subset (paper: the whole test set)")
        return out

    def factor_names(self) -> list[str]:
        """Sorted union of the factor names of all arms."""
        return sorted({k for a in self.arms.values() for k in a["factors"]})


def _validate_arm(name: str, arm: Any) -> dict:
    where = f"arms.{name}"
    if not _NAME.match(name):
        _fail(where, name, "an arm name of letters, digits and underscores")
    if not isinstance(arm, dict):
        _fail(where, arm, "a mapping with keys factors, augment, set, reference")
    unknown = sorted(set(arm) - _ARM_KEYS)
    if unknown:
        _fail(f"{where}.{unknown[0]}", arm[unknown[0]], f"absent (allowed keys: {sorted(_ARM_KEYS)})")
    factors = arm.get("factors")
    if not isinstance(factors, dict):
        _fail(f"{where}.factors", factors, "a mapping of factor name -> value (label_type and family required)")
    if factors.get("label_type") not in LABEL_TYPES:
        _fail(f"{where}.factors.label_type", factors.get("label_type"), f"one of {list(LABEL_TYPES)}")
    if not isinstance(factors.get("family"), str) or not factors.get("family"):
        _fail(f"{where}.factors.family", factors.get("family"), "a family name string")
    for k, v in factors.items():
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            _fail(f"{where}.factors.{k}", v, "a string or a number")
    if not isinstance(arm.get("augment", []), list):
        _fail(f"{where}.augment", arm.get("augment"), "a list of augmentation stages")
    if not isinstance(arm.get("set", {}) or {}, dict):
        _fail(f"{where}.set", arm.get("set"), "a mapping of TrainConfig fields")
    ref = arm.get("reference")
    if ref is not None and not isinstance(ref, str):
        _fail(f"{where}.reference", ref, "a setting name of datasets/reference/siedel2025.csv or null")
    return {"factors": dict(factors), "augment": copy.deepcopy(arm.get("augment", [])),
            "set": dict(arm.get("set") or {}), "reference": ref}


def _section(raw: dict, key: str, allowed) -> dict:
    """An optional mapping section of the grid whose keys must be among ``allowed``."""
    section = raw.get(key) or {}
    if not isinstance(section, dict):
        _fail(key, section, "a mapping")
    for k in section:
        if k not in allowed:
            _fail(f"{key}.{k}", section[k], f"absent (allowed: {sorted(allowed)})")
    return section


def _validate_fit(fit: dict) -> None:
    """The ``fit:`` section's values (the fit stages run late; a bad value must stop the grid up front)."""
    if "fallback" in fit and fit["fallback"] not in FALLBACKS:
        _fail("fit.fallback", fit["fallback"], f"one of {list(FALLBACKS)}")
    for key, minimum in (("n_images", 1), ("n_boot", 10), ("proxy_epochs", 1)):
        v = fit.get(key)
        if key in fit and (not isinstance(v, int) or isinstance(v, bool) or v < minimum):
            _fail(f"fit.{key}", v, f"an int >= {minimum}")
    v = fit.get("proxy_n_per_class")
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
        _fail("fit.proxy_n_per_class", v, "an int >= 1 or null (all training images)")


def _validate(raw: Any, source: str) -> Grid:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: must hold a mapping of params, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        _fail(unknown[0], raw[unknown[0]], f"absent (allowed top-level keys: {sorted(_TOP_KEYS)})")
    for key in _REQUIRED:
        if key not in raw:
            raise ConfigError(f"{source}: params field {key!r} is required")
    if not isinstance(raw["grid"], str) or not raw["grid"]:
        _fail("grid", raw["grid"], "a grid name")
    if raw["dataset"] not in DATASETS:
        _fail("dataset", raw["dataset"], f"one of {list(DATASETS)}")
    allowed = raw.get("datasets_allowed")
    if allowed is not None and raw["dataset"] not in allowed:
        _fail("dataset", raw["dataset"], f"one of this grid's datasets_allowed {allowed}")
    seeds = raw["seeds"]
    if (not isinstance(seeds, list) or not seeds
            or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds)
            or len(set(seeds)) != len(seeds)):
        _fail("seeds", seeds, "a non-empty list of distinct ints >= 0")
    if not isinstance(raw["arms"], dict) or not raw["arms"]:
        _fail("arms", raw["arms"], "a non-empty mapping of arm name -> arm")
    arms = {name: _validate_arm(name, arm) for name, arm in raw["arms"].items()}
    run_arms = raw["run_arms"]
    if not isinstance(run_arms, list) or not run_arms or len(set(run_arms)) != len(run_arms):
        _fail("run_arms", run_arms, "a non-empty list of distinct arm names")
    for i, a in enumerate(run_arms):
        if a not in arms:
            _fail(f"run_arms[{i}]", a, f"an arm defined under 'arms' ({sorted(arms)})")
    if not isinstance(raw["base"], dict):
        _fail("base", raw["base"], "a mapping of TrainConfig fields")
    for key in ("dataset", "data_source", "seed", "augment"):
        if key in raw["base"]:
            _fail(f"base.{key}", raw["base"][key], f"absent ({key} is set by the grid, not by base)")
    evaluation = _section(raw, "evaluation", {*_EVAL_KEYS, "corruption_source"})
    fit = _section(raw, "fit", _FIT_KEYS)
    _validate_fit(fit)
    try:
        stats_spec = validate_stats_spec(raw.get("stats"), {n: a for n, a in arms.items()})
    except ValueError as exc:
        raise ConfigError(f"params field {exc}") from None
    rc = raw.get("reference_comparable", False)
    if not isinstance(rc, bool):
        _fail("reference_comparable", rc, "true or false")
    download = raw.get("download", "auto")
    if download not in DOWNLOAD_MODES:
        _fail("download", download, f"one of {list(DOWNLOAD_MODES)} (auto: fetch a missing dataset on first use; "
                                    "never: local copies only)")
    corruption_source = evaluation.get("corruption_source", "generated")
    if corruption_source not in CORRUPTION_SOURCES:
        _fail("evaluation.corruption_source", corruption_source, f"one of {list(CORRUPTION_SOURCES)}")
    if corruption_source == "official" and raw["dataset"] not in OFFICIAL_SCORED_DATASETS:
        _fail("evaluation.corruption_source", corruption_source,
              f"'generated' for dataset {raw['dataset']!r} (official corruption files are scored for "
              f"{list(OFFICIAL_SCORED_DATASETS)}; Tiny-ImageNet-C's per-class JPEG folders are not wired)")
    grid = Grid(name=raw["grid"], dataset=raw["dataset"], data_source=raw.get("data_source"),
                seeds=tuple(seeds), run_arms=tuple(run_arms), base=dict(raw["base"]), evaluation=dict(evaluation),
                arms=arms, reference_comparable=rc, fit=dict(fit), stats=stats_spec,
                raw=raw, download=download, corruption_source=corruption_source,
                execution=parse_execution(raw.get("execution")))
    k = DATASET_SPECS[grid.dataset].num_classes
    for a in run_arms:  # every trained cell must build (fitted mappings are resolved when training)
        cfg = arm_config(grid, a, seeds[0], resolve_fitted=False)
        try:
            build_pipeline(cfg.augment, k, cfg.combine)
        except ConfigError as exc:
            raise ConfigError(f"arm {a!r}: {exc}") from None
    return grid


def load_grid(path: str | Path = "params.yaml") -> Grid:
    """Read and validate a grid file (``params.yaml`` by default)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"grid file not found: {p}")
    try:
        raw = load_yaml(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"grid file {p} is not valid YAML: {yaml_error_text(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"grid file {p} cannot be read: {exc}") from None
    return _validate(raw, str(p))


def _resolve_mapping(value: Any, grid: Grid, where: str, resolve: bool) -> Any:
    if isinstance(value, str) and value.startswith("fitted:"):
        source = value.split(":", 1)[1]
        if source not in FITTED_SOURCES:
            _fail(f"{where}.mapping", value, f"one of {[f'fitted:{s}' for s in FITTED_SOURCES]} or a preset/mapping")
        path = fitted_mapping_path(grid.dataset, source)
        if not resolve:
            return "polynomial_chance"  # placeholder for validation only
        stage = "fit_mappings" if source == "hvs" else "proxy_accuracy"
        if not path.is_file():
            raise ConfigError(f"{where}.mapping is {value!r} but {path} does not exist; run the pipeline's "
                              f"{stage} stage first (dvc repro {stage})")
        expected, hint = "a fitted mapping set (mappings.to_dict JSON)", f"rerun its stage: dvc repro -f {stage}"
        d = read_json(path, expected, hint=hint)
        try:
            mappings.from_dict(d)
        except (TypeError, ValueError, KeyError) as exc:
            raise FileFormatError(path, f"{path}: expected {expected}, but it is not a valid mapping set "
                                        f"({exc}); {hint}") from None
        return d
    return value


def arm_config(grid: Grid, arm: str, seed: int, *, resolve_fitted: bool = True) -> TrainConfig:
    """The validated TrainConfig of ``arm`` and ``seed``: base, then the arm's ``set``, its
    augmentation stages, the grid's dataset and evaluation settings, and the seed."""
    if arm not in grid.arms:
        raise ConfigError(f"arm {arm!r} is not defined in the grid; defined arms: {sorted(grid.arms)}")
    spec = grid.arms[arm]
    d = copy.deepcopy(grid.base)
    d.update(copy.deepcopy(spec["set"]))
    for k, field_name in _EVAL_KEYS.items():
        if k in grid.evaluation:
            d[field_name] = copy.deepcopy(grid.evaluation[k])
    augment = []
    for i, stage in enumerate(spec["augment"]):
        stage = copy.deepcopy(stage)
        if isinstance(stage, dict) and "mapping" in stage:
            stage["mapping"] = _resolve_mapping(stage["mapping"], grid, f"arms.{arm}.augment[{i}]", resolve_fitted)
        augment.append(stage)
    d.update(dataset=grid.dataset, data_source=grid.data_source, seed=int(seed), augment=augment,
             corruption_cache=str(CORRUPTED_ROOT))
    try:
        return TrainConfig.from_dict(apply_overrides(d, []))
    except ConfigError as exc:
        raise ConfigError(f"arm {arm!r}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"arm {arm!r}: {exc}") from None


def list_grids(root: str | Path = GRIDS_DIR) -> list[str]:
    """Names of the grids in ``root`` (``<name>.yaml``)."""
    return sorted(p.stem for p in Path(root).glob("*.yaml"))


def use_grid(name: str, *, dataset: str | None = None, root: str | Path = GRIDS_DIR,
             params_path: str | Path = "params.yaml", execution: dict | None = None) -> Grid:
    """Validate ``grids/<name>.yaml`` (optionally with another ``dataset``, and ``execution`` settings such as
    ``{"executor": "ray", "workers": 4}`` merged into its ``execution:`` section) and write it to ``params.yaml``.
    The grid file itself is never edited: the executor is this machine's choice."""
    path = Path(root) / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown grid {name!r}; available grids: {list_grids(root)}")
    text = path.read_text()
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"grid file {path} is not valid YAML: {yaml_error_text(exc)}") from None
    if dataset is not None:
        raw["dataset"] = dataset
        text = _replace_dataset(text, dataset)
    if execution:
        raw["execution"] = {**(raw.get("execution") or {}), **execution}
        text = _replace_execution(text, raw["execution"])
    _validate(raw, str(path))
    header = f"# Active grid: copied from {path} by `softbench grid use {name}`" + (
        f" --dataset {dataset}" if dataset else "") + ". Edit freely; `dvc repro` reads this file.\n"
    atomic_write_text(params_path, header + text)
    return load_grid(params_path)


def _replace_execution(text: str, execution: dict) -> str:
    """``text`` with its top-level ``execution:`` block (the line and its indented continuation) replaced by
    ``execution`` in flow style, or with it appended."""
    line = "execution: " + yaml.safe_dump(execution, default_flow_style=True, sort_keys=False).strip() + "\n"
    out, n = re.subn(r"(?m)^execution:.*\n(?:[ \t]+.*\n|[ \t]*\n)*", line, text if text.endswith("\n") else text + "\n",
                     count=1)
    return out if n == 1 else out + "# where the runs execute on this machine (never changes a result)\n" + line


def _replace_dataset(text: str, dataset: str) -> str:
    out, n = re.subn(r"(?m)^dataset:.*$", f"dataset: {dataset}", text, count=1)
    if n != 1:
        raise ConfigError("grid file has no top-level 'dataset:' line to replace")
    return out
