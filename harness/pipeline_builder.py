"""Turn the validated ``augment`` list of a :class:`~harness.config.TrainConfig` into batched stages."""

from __future__ import annotations

import inspect

import mappings
from harness.augment import (
    BatchSoftAugment,
    BatchSoftNoise,
    BatchSoftPipeline,
    BatchSoftRandomCrop,
    BatchSoftRandomErasing,
)
from harness.augment.basic import BatchRandomCrop, BatchRandomHorizontalFlip
from harness.config import ConfigError, StageConfig

__all__ = ["build_stage", "build_pipeline", "stage_params_allowed"]

#: the class each stage kind builds; its constructor's keyword arguments are the kind's ``params``
_CLASSES = {"flip": BatchRandomHorizontalFlip, "crop": BatchRandomCrop, "trivial_augment": BatchSoftAugment,
            "random_erasing": BatchSoftRandomErasing, "noise": BatchSoftNoise, "soft_crop": BatchSoftRandomCrop}
_NOT_PARAMS = {"self", "num_classes", "mapping", "hard"}  # set from the stage's other fields


def stage_params_allowed(kind: str) -> list[str]:
    """The ``params`` a stage ``kind`` accepts: its class's constructor arguments (sorted)."""
    sig = inspect.signature(_CLASSES[kind].__init__)
    return sorted(n for n, p in sig.parameters.items()
                  if n not in _NOT_PARAMS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def _as_tuple(value):
    """Lists (YAML sequences) become tuples; anything else is passed on for the stage to reject."""
    return tuple(value) if isinstance(value, list) else value


def _mapping(stage: StageConfig, where: str):
    if stage.mapping is None:
        return None
    try:
        return mappings.from_dict(stage.mapping)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config field {where}.mapping is not a valid mapping: {exc}") from None


def build_stage(stage: StageConfig, num_classes: int, where: str = "augment[?]"):
    """One batched stage from its config (parameters are validated by the stage constructors)."""
    params = dict(stage.params)
    hard = not stage.soft
    if stage.kind in _CLASSES:
        allowed = stage_params_allowed(stage.kind)
        for key in params:
            if key not in allowed:
                raise ConfigError(f"config field {where}.params.{key} must be absent: stage {stage.kind!r} "
                                  f"accepts the params {allowed}, got {params[key]!r}")
    try:
        if stage.kind == "flip":
            return BatchRandomHorizontalFlip(**params)
        if stage.kind == "crop":
            return BatchRandomCrop(**params)
        if stage.kind == "trivial_augment":
            mapping = stage.mapping if isinstance(stage.mapping, str) else _mapping(stage, where)
            if isinstance(mapping, str) and mapping not in mappings.PRESETS:
                raise ConfigError(f"config field {where}.mapping must be one of the presets {list(mappings.PRESETS)} "
                                  f"or a mapping dict, got {mapping!r}")
            if mapping is None:
                mapping = "polynomial_chance"
            if "ops" in params:
                params["ops"] = _as_tuple(params["ops"])
            return BatchSoftAugment(num_classes, mapping=mapping, hard=hard, **params)
        if stage.kind == "random_erasing":
            for key in ("scale", "ratio"):
                if key in params:
                    params[key] = _as_tuple(params[key])
            return BatchSoftRandomErasing(num_classes, mapping=_mapping(stage, where), hard=hard, **params)
        if stage.kind == "noise":
            return BatchSoftNoise(num_classes, mapping=_mapping(stage, where), hard=hard, **params)
        if stage.kind == "soft_crop":
            if "background" in params:
                params["background"] = _as_tuple(params["background"])
            return BatchSoftRandomCrop(num_classes, mapping=_mapping(stage, where), hard=hard, **params)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config field {where}.params: {exc}") from None
    raise ConfigError(f"config field {where}.kind has no builder: {stage.kind!r}")  # pragma: no cover


def build_pipeline(stages, num_classes: int, combine: str = "product") -> BatchSoftPipeline:
    """A :class:`BatchSoftPipeline` from a sequence of :class:`StageConfig`."""
    built = [build_stage(s, num_classes, f"augment[{i}]") for i, s in enumerate(stages)]
    return BatchSoftPipeline(built, num_classes=num_classes, combine=combine)
