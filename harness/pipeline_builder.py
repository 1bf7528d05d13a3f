"""Turn the validated ``augment`` list of a :class:`~harness.config.TrainConfig` into batched stages.

Every stage kind is a :class:`~harness.augment._common.BatchStage` class whose ``stage`` name is the
kind; its constructor's keyword arguments are the kind's ``params``, and a stage that takes
``num_classes`` is a soft-capable one, also given the config's ``mapping`` and ``hard = not soft``.
"""

from __future__ import annotations

import inspect

import mappings
from harness.augment._common import BatchStage
from harness.augment.basic import BatchRandomCrop, BatchRandomHorizontalFlip
from harness.augment.batch_trivial import BatchSoftAugment
from harness.augment.crop import BatchSoftRandomCrop
from harness.augment.erasing import BatchSoftRandomErasing
from harness.augment.noise import BatchSoftNoise
from harness.augment.pipeline import BatchSoftPipeline
from harness.config import ConfigError, StageConfig

__all__ = ["build_stage", "build_pipeline", "stage_params_allowed"]

#: the class each stage kind builds, keyed by its ``stage`` name
_CLASSES: dict[str, type[BatchStage]] = {
    cls.stage: cls
    for cls in (BatchRandomHorizontalFlip, BatchRandomCrop, BatchSoftAugment, BatchSoftRandomErasing,
                BatchSoftNoise, BatchSoftRandomCrop)
}
_NOT_PARAMS = {"self", "num_classes", "mapping", "hard"}  # set from the stage's other fields
_TUPLE_PARAMS = frozenset({"ops", "scale", "ratio", "background"})  # YAML sequences passed on as tuples


def _parameters(kind: str) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(_CLASSES[kind].__init__).parameters)


def stage_params_allowed(kind: str) -> list[str]:
    """The ``params`` a stage ``kind`` accepts: its class's constructor arguments (sorted)."""
    return sorted(n for n, p in _parameters(kind).items()
                  if n not in _NOT_PARAMS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def _mapping(stage: StageConfig, where: str):
    """The stage's mapping: None (the stage's default), a preset name, or a mapping built from its dict."""
    if stage.mapping is None:
        return None
    if isinstance(stage.mapping, str):  # presets by name (the config allows them for trivial_augment only)
        if stage.mapping not in mappings.PRESETS:
            raise ConfigError(f"config field {where}.mapping must be one of the presets "
                              f"{list(mappings.PRESETS)} or a mapping dict, got {stage.mapping!r}")
        return stage.mapping
    try:
        return mappings.from_dict(stage.mapping)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config field {where}.mapping is not a valid mapping: {exc}") from None


def build_stage(stage: StageConfig, num_classes: int, where: str = "augment[?]") -> BatchStage:
    """One batched stage from its config (parameters are validated by the stage constructors)."""
    if stage.kind not in _CLASSES:  # pragma: no cover - the config validates the kind
        raise ConfigError(f"config field {where}.kind has no builder: {stage.kind!r}")
    allowed = stage_params_allowed(stage.kind)
    params = {}
    for key, value in stage.params.items():
        if key not in allowed:
            raise ConfigError(f"config field {where}.params.{key} must be absent: stage {stage.kind!r} "
                              f"accepts the params {allowed}, got {value!r}")
        params[key] = tuple(value) if key in _TUPLE_PARAMS and isinstance(value, list) else value
    args = ()
    if "num_classes" in _parameters(stage.kind):  # a soft-capable stage
        args = (num_classes,)
        params["hard"] = not stage.soft
        mapping = _mapping(stage, where)
        if mapping is not None:
            params["mapping"] = mapping
    try:
        return _CLASSES[stage.kind](*args, **params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config field {where}.params: {exc}") from None


def build_pipeline(stages, num_classes: int, combine: str = "product") -> BatchSoftPipeline:
    """A :class:`BatchSoftPipeline` from a sequence of :class:`StageConfig`."""
    built = [build_stage(s, num_classes, f"augment[{i}]") for i, s in enumerate(stages)]
    return BatchSoftPipeline(built, num_classes=num_classes, combine=combine)
