"""Training configuration: plain dataclasses, validated once at the edge.

A config is built from a YAML/JSON mapping (``TrainConfig.from_dict``), optionally overridden with
``key=value`` strings (``apply_overrides``; dotted keys, YAML-parsed values), and validated in
full before anything runs. Every error names the field, the value and what is allowed.

Augmentation pipeline: an ordered list of stages, each ``{kind, soft, mapping, params}``:

================  ==========================================  =====================================
kind              params                                      mapping (soft stages)
================  ==========================================  =====================================
flip              p (default 0.5)                             (always hard)
crop              padding (default 4)                         (always hard)
trivial_augment   ops, num_magnitude_bins, fill               preset name (default polynomial_chance)
                                                              or a ``mappings`` dict / MappingSet JSON
random_erasing    p, scale, ratio, value                      mapping dict (default Polynomial(1/K, 1))
noise             sigma_max, patch_frac                       mapping dict (default Polynomial(0.3, 2))
soft_crop         sigma_px | sigma_frac, background           mapping dict (default Polynomial(1/K, 2))
================  ==========================================  =====================================
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.datasets import DATASETS
from harness.models import _BUILDERS, MODELS

__all__ = ["StageConfig", "TrainConfig", "STAGE_KINDS", "load_config", "apply_overrides", "ConfigError", "YamlLoader",
           "load_yaml", "yaml_error_text"]

STAGE_KINDS: tuple[str, ...] = ("flip", "crop", "trivial_augment", "random_erasing", "noise", "soft_crop")
_HARD_ONLY = ("flip", "crop")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
LS_CONVENTIONS = ("other", "uniform")
COMBINE = ("product", "min")
#: values of ``compile`` and ``drop_last``: ``"auto"`` (decided per device) or a boolean
AUTO_BOOL = ("auto", True, False)
#: ``torch.compile`` modes a config may name (``compile_mode``)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
#: the fields added for compiled training, left out of :meth:`TrainConfig.training_hash` at these values so
#: that configs written before them keep their hash
_HASH_NEUTRAL_DEFAULTS = {"compile_mode": "reduce-overhead", "drop_last": "auto"}


class ConfigError(ValueError):
    """An invalid configuration value (a ``ValueError`` naming the field)."""


class YamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads YAML 1.2 floats without a dot (``1e-3``, ``5E+4``) as numbers.

    PyYAML implements YAML 1.1, where ``1e-3`` is the string ``'1e-3'``; every config, ``--set`` value
    and grid is read with this loader, so scientific notation is a number everywhere.
    """


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str):
    """Parse YAML text with :class:`YamlLoader` (safe; scientific notation reads as a number)."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 -- YamlLoader is a SafeLoader


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """A YAML parse error on one line: the problem and where (line, column)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def _fail(field_name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"config field {field_name!r} must be {allowed}, got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_finite(v: Any) -> bool:
    return _is_num(v) and math.isfinite(v)


@dataclass(frozen=True)
class StageConfig:
    """One augmentation stage. ``soft=False`` records provenance but keeps c = 1."""

    kind: str
    soft: bool = False
    mapping: Any = None
    params: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "StageConfig":
        if isinstance(d, str):
            d = {"kind": d}
        if not isinstance(d, dict):
            _fail(where, d, "a mapping with keys kind, soft, mapping, params (or a stage kind string)")
        unknown = set(d) - {"kind", "soft", "mapping", "params"}
        if unknown:
            _fail(f"{where}.{sorted(unknown)[0]}", d[sorted(unknown)[0]], "absent (allowed keys: kind, soft, mapping, params)")
        stage = cls(
            kind=d.get("kind"),
            soft=d.get("soft", False),
            mapping=copy.deepcopy(d.get("mapping")),
            params=copy.deepcopy(d.get("params") or {}),
        )
        stage.validate(where)
        return stage

    def validate(self, where: str) -> None:
        if self.kind not in STAGE_KINDS:
            _fail(f"{where}.kind", self.kind, f"one of {list(STAGE_KINDS)}")
        if not isinstance(self.soft, bool):
            _fail(f"{where}.soft", self.soft, "true or false")
        if self.soft and self.kind in _HARD_ONLY:
            _fail(f"{where}.soft", self.soft, f"false for kind {self.kind!r} (it never changes the label)")
        if not isinstance(self.params, dict):
            _fail(f"{where}.params", self.params, "a mapping of stage parameters")
        if self.mapping is not None and not isinstance(self.mapping, (str, dict)):
            _fail(f"{where}.mapping", self.mapping, "a preset name, a mapping dict (mappings.to_dict) or null")
        if isinstance(self.mapping, str) and self.kind != "trivial_augment":
            _fail(f"{where}.mapping", self.mapping, "a mapping dict (presets by name exist only for trivial_augment)")

    def as_dict(self) -> dict:
        return {"kind": self.kind, "soft": self.soft, "mapping": self.mapping, "params": dict(self.params)}


def _default_augment() -> tuple[StageConfig, ...]:
    return (StageConfig("flip"), StageConfig("crop", params={"padding": 4}))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (together with the seed).

    ``augment_chunk``: samples augmented per call of the batched pipeline (rounded down to whole
    batches, at least one); larger chunks amortise kernel launches on CUDA, the result depends on it
    only through the order of random draws.

    Units: ``lr`` per step of SGD; ``weight_decay`` L2 coefficient; ``epochs`` full passes;
    ``label_smoothing`` eps in [0, 1) in the chosen convention (``"other"``: eps over the K-1 wrong
    classes as in the reference; ``"uniform"``: eps/K over all K as in torch).

    ``precision``: ``"auto"`` (default; bf16 autocast on CUDA, fp32 on the CPU), ``"fp32"`` or ``"bf16"``
    (:func:`harness.inference.resolve_precision`); the loss is float32 in every case.

    Compiled training (``compile``, ``compile_mode``, ``drop_last``):

    * ``compile``: ``"auto"`` (default) compiles the training step (forward pass and loss;
      ``torch.compile``) on CUDA and runs it eagerly on the CPU, so CPU numbers stay bit-identical to
      eager training; ``true`` compiles on any device (the CPU compiled path is tested), ``false`` never.
      A step whose compilation fails falls back to eager with a logged warning recorded in
      ``provenance.json`` (``compile.fallback``).
    * ``compile_mode``: the ``torch.compile`` mode, one of ``"default"``, ``"reduce-overhead"`` (CUDA
      graphs; the default, expected best at the paper's batch 128, where a WRN-28-4 step is ~12 ms and
      launch overhead counts) or ``"max-autotune"`` (CUDA graphs plus kernel autotuning: minutes of
      compilation). ``benchmarks/gpu_epoch.py`` measures all three; the default follows its figure.
    * ``drop_last``: drop the last partial batch of every epoch so that every step has one static
      shape (one compiled graph, replayable as a CUDA graph). ``"auto"`` (default) drops exactly when
      the step is compiled; ``true`` / ``false`` force it. The resolved values are recorded in
      ``provenance.json``. A last batch of one sample is always skipped (BatchNorm needs two).
    """

    dataset: str = "mnist5k"
    data_source: str | None = None
    n_per_class: int | None = None
    model: str = "smallnet"
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    augment: tuple[StageConfig, ...] = field(default_factory=_default_augment)
    combine: str = "product"
    reweight: bool = False
    normalize_weights: bool = False
    label_smoothing: float = 0.0
    label_smoothing_convention: str = "other"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    compile: bool | str = "auto"
    compile_mode: str = "reduce-overhead"
    drop_last: bool | str = "auto"
    eval_batch_size: int = 1000
    augment_chunk: int = 8192
    checkpoint_every: int = 1
    corruptions: bool = True
    corruption_severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    corruption_n: int | None = None
    corruption_cache: str = "datasets/prepared"
    op_eval_bins: tuple[int, ...] = ()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"config must be a mapping of fields, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config field {unknown[0]!r}; allowed fields: {sorted(names)}")
        kwargs = dict(d)
        if "augment" in kwargs:
            aug = kwargs["augment"]
            if aug is None:
                aug = []
            if not isinstance(aug, (list, tuple)):
                _fail("augment", aug, "a list of stages")
            kwargs["augment"] = tuple(StageConfig.from_dict(s, f"augment[{i}]") for i, s in enumerate(aug))
        for key in ("corruption_severities", "op_eval_bins"):
            if key in kwargs and isinstance(kwargs[key], list):
                kwargs[key] = tuple(kwargs[key])
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.dataset not in DATASETS:
            _fail("dataset", self.dataset, f"one of {list(DATASETS)}")
        if self.data_source is not None and not isinstance(self.data_source, str):
            _fail("data_source", self.data_source, "a path string or null")
        if self.n_per_class is not None and (not _is_int(self.n_per_class) or self.n_per_class < 1):
            _fail("n_per_class", self.n_per_class, "an int >= 1 or null (all data)")
        if self.model not in MODELS:
            _fail("model", self.model, f"one of {list(MODELS)}")
        if not isinstance(self.model_kwargs, dict):
            _fail("model_kwargs", self.model_kwargs, "a mapping")
        allowed_kwargs = sorted(_model_kwargs_allowed(self.model))
        for key in self.model_kwargs:
            if key not in allowed_kwargs:
                _fail(f"model_kwargs.{key}", self.model_kwargs[key],
                      f"absent: model {self.model!r} accepts the keyword arguments {allowed_kwargs}")
        for name in ("epochs", "eval_batch_size", "checkpoint_every", "augment_chunk"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                _fail(name, v, "an int >= 1")
        if not _is_int(self.batch_size) or self.batch_size < 2:
            _fail("batch_size", self.batch_size, "an int >= 2 (BatchNorm needs two or more samples per batch)")
        if not _is_finite(self.lr) or not self.lr > 0:
            _fail("lr", self.lr, "a finite number > 0")
        if not _is_finite(self.momentum) or not 0 <= self.momentum < 1:
            _fail("momentum", self.momentum, "a finite number in [0, 1)")
        if not _is_finite(self.weight_decay) or self.weight_decay < 0:
            _fail("weight_decay", self.weight_decay, "a finite number >= 0")
        if self.schedule not in ("cosine", "constant"):
            _fail("schedule", self.schedule, "one of ['cosine', 'constant']")
        if self.combine not in COMBINE:
            _fail("combine", self.combine, f"one of {list(COMBINE)}")
        for name in ("nesterov", "reweight", "normalize_weights", "channels_last", "corruptions"):
            if not isinstance(getattr(self, name), bool):
                _fail(name, getattr(self, name), "true or false")
        for name in ("compile", "drop_last"):
            v = getattr(self, name)
            if not (isinstance(v, bool) or (isinstance(v, str) and v == "auto")):
                _fail(name, v, "'auto', true or false")
        if not isinstance(self.compile_mode, str) or self.compile_mode not in COMPILE_MODES:
            _fail("compile_mode", self.compile_mode, f"one of {list(COMPILE_MODES)}")
        if not _is_finite(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            _fail("label_smoothing", self.label_smoothing, "a number in [0, 1)")
        if self.label_smoothing_convention not in LS_CONVENTIONS:
            _fail("label_smoothing_convention", self.label_smoothing_convention, f"one of {list(LS_CONVENTIONS)}")
        if self.label_smoothing > 0 and any(s.soft for s in self.augment):
            _fail("label_smoothing", self.label_smoothing,
                  "0 when a soft augmentation stage is used (fixed and adaptive smoothing are separate arms)")
        if not _is_int(self.seed) or self.seed < 0:
            _fail("seed", self.seed, "an int >= 0")
        if self.device not in DEVICES:
            _fail("device", self.device, f"one of {list(DEVICES)}")
        if self.precision not in PRECISIONS:
            _fail("precision", self.precision, f"one of {list(PRECISIONS)}")
        sev = self.corruption_severities
        if not isinstance(sev, tuple) or not sev or any(not _is_int(s) or not 1 <= s <= 5 for s in sev):
            _fail("corruption_severities", sev, "a non-empty list of ints in 1..5")
        if self.corruption_n is not None and (not _is_int(self.corruption_n) or self.corruption_n < 1):
            _fail("corruption_n", self.corruption_n, "an int >= 1 or null (whole test set)")
        if not isinstance(self.corruption_cache, str) or not self.corruption_cache:
            _fail("corruption_cache", self.corruption_cache, "a folder path string")
        bins = self.op_eval_bins
        if not isinstance(bins, tuple) or any(not _is_int(b) or not 0 <= b <= 30 for b in bins):
            _fail("op_eval_bins", bins, "a list of TrivialAugment magnitude bins, ints in 0..30 (empty: none)")
        for i, s in enumerate(self.augment):
            s.validate(f"augment[{i}]")

    # ------------------------------------------------------------------ serialisation
    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["augment"] = [s.as_dict() for s in self.augment]
        d["corruption_severities"] = list(self.corruption_severities)
        d["op_eval_bins"] = list(self.op_eval_bins)
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.as_dict(), sort_keys=False)

    def training_hash(self) -> str:
        """Hash (16 hex digits) of every field that affects training (not the evaluation fields).

        ``compile_mode`` and ``drop_last`` enter only when they differ from their defaults
        (``"reduce-overhead"``, ``"auto"``), so a config written before those fields existed keeps its
        hash. ``compile`` always enters as written (``"auto"`` is not ``false``: it compiles on CUDA).
        """
        d = self.as_dict()
        for k in ("eval_batch_size", "checkpoint_every", "corruptions", "corruption_severities", "corruption_n",
                  "corruption_cache", "op_eval_bins"):
            d.pop(k)
        for k, default in _HASH_NEUTRAL_DEFAULTS.items():
            if d[k] == default and isinstance(d[k], type(default)):
                d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _model_kwargs_allowed(model: str) -> frozenset[str]:
    """The keyword arguments model ``model`` accepts (the registry's table in :mod:`harness.models`)."""
    return _BUILDERS[model][1]


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "null" if v is None else type(v).__name__


#: config fields with sub-fields a dotted ``--set`` key may address
_NESTED_FIELDS = ("model_kwargs", "augment", "corruption_severities", "op_eval_bins")


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    """Set ``d[a][b]...[z] = value`` for ``dotted = "a.b...z"``; list items by index. Every step must exist
    in a list, lead into a mapping (a missing mapping key is created), and the first part must be a
    config field; anything else is a :class:`ConfigError` naming the path and what is allowed."""
    parts = dotted.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"--set {dotted}: the key has an empty part; use dotted field names such as "
                          "epochs or augment.2.soft")
    fields = sorted(f.name for f in dataclasses.fields(TrainConfig))
    if parts[0] not in fields:
        raise ConfigError(f"--set {dotted}: unknown config field {parts[0]!r}; allowed fields: {fields}")
    if len(parts) > 1 and parts[0] not in _NESTED_FIELDS:
        raise ConfigError(f"--set {dotted}: config field {parts[0]!r} has no sub-fields (only "
                          f"{list(_NESTED_FIELDS)} do); set {parts[0]}=VALUE")
    cur: Any = d
    for i, p in enumerate(parts):
        here = ".".join(parts[:i + 1])
        last = i == len(parts) - 1
        if isinstance(cur, list):
            if not p.isdigit() or int(p) >= len(cur):
                allowed = f"indices 0..{len(cur) - 1}" if cur else "none (the list is empty)"
                raise ConfigError(f"--set {dotted}: {here!r} is not a valid list index; allowed: {allowed}")
            j = int(p)
            if last:
                cur[j] = value
                return
            if parts[0] == "augment" and i == 1 and isinstance(cur[j], str):
                cur[j] = {"kind": cur[j]}  # a stage given by its kind gets its sub-fields
            cur = cur[j]
        elif isinstance(cur, dict):
            if last:
                cur[p] = value
                return
            if p not in cur or cur[p] is None:
                cur[p] = {}
            cur = cur[p]
        else:
            parent = ".".join(parts[:i])
            raise ConfigError(f"--set {dotted}: {parent!r} is {_kind(cur)} ({cur!r}) and has no sub-field {p!r}; "
                              f"set {parent}=VALUE instead")


def apply_overrides(d: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``key=value`` overrides (dotted keys, list indices allowed; values parsed as YAML)."""
    out = copy.deepcopy(d)
    out.setdefault("augment", [s.as_dict() for s in _default_augment()])
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        if not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = load_yaml(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {yaml_error_text(exc)}") from None
        _set_dotted(out, key, value)
    return out


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config (or start from the defaults when ``path`` is None) and apply overrides.

    Every error is a :class:`ConfigError` naming the file (and the ``--set`` overrides) and the field."""
    d: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}" + (" (it is a directory)" if p.is_dir() else ""))
        try:
            d = load_yaml(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {yaml_error_text(exc)}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p} cannot be read: {exc}") from None
        if not isinstance(d, dict):
            raise ConfigError(f"config file {p} must hold a mapping of fields, got {type(d).__name__}")
    try:
        return TrainConfig.from_dict(apply_overrides(d, list(overrides)))
    except ConfigError as exc:
        if path is None:
            raise
        raise ConfigError(f"config file {path}: {exc}") from None
