"""Turn the validated ``augment`` list of a :class:`~harness.config.TrainConfig` into batched stages."""

from __future__ import annotations

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

__all__ = ["build_stage", "build_pipeline"]


def _mapping(stage: StageConfig, where: str):
    if stage.mapping is None:
        return None
    try:
        return mappings.from_dict(stage.mapping)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config field {where}.mapping is not a valid mapping: {exc}") from None


def build_stage(stage: StageConfig, num_classes: int, where: str = "augment[?]"):
    """One batched stage from its config (parameters are validated by the stage constructors)."""
    params = dict(stage.params)
    hard = not stage.soft
    try:
        if stage.kind == "flip":
            return BatchRandomHorizontalFlip(**params)
        if stage.kind == "crop":
            return BatchRandomCrop(**params)
        if stage.kind == "trivial_augment":
            mapping = stage.mapping if isinstance(stage.mapping, str) else _mapping(stage, where)
            if mapping is None:
                mapping = "polynomial_chance"
            if "ops" in params and params["ops"] is not None:
                params["ops"] = tuple(params["ops"])
            return BatchSoftAugment(num_classes, mapping=mapping, hard=hard, **params)
        if stage.kind == "random_erasing":
            for key in ("scale", "ratio"):
                if key in params:
                    params[key] = tuple(params[key])
            return BatchSoftRandomErasing(num_classes, mapping=_mapping(stage, where), hard=hard, **params)
        if stage.kind == "noise":
            return BatchSoftNoise(num_classes, mapping=_mapping(stage, where), hard=hard, **params)
        if stage.kind == "soft_crop":
            if isinstance(params.get("background"), list):
                params["background"] = tuple(params["background"])
            return BatchSoftRandomCrop(num_classes, mapping=_mapping(stage, where), hard=hard, **params)
    except TypeError as exc:
        if "unexpected keyword" in str(exc) or "got an unexpected" in str(exc):
            raise ConfigError(f"config field {where}.params: {exc}") from None
        raise ConfigError(f"config field {where}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"config field {where}: {exc}") from None
    raise ConfigError(f"config field {where}.kind has no builder: {stage.kind!r}")  # pragma: no cover


def build_pipeline(stages, num_classes: int, combine: str = "product") -> BatchSoftPipeline:
    """A :class:`BatchSoftPipeline` from a sequence of :class:`StageConfig`."""
    built = [build_stage(s, num_classes, f"augment[{i}]") for i, s in enumerate(stages)]
    return BatchSoftPipeline(built, num_classes=num_classes, combine=combine)
