"""softbench harness: soft augmentations with per-sample provenance, soft targets and loss,
datasets, models, trainer, corruption benchmark and evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness._lazy import lazy_exports

# name -> module; imported on first access so that importing a light submodule
# (e.g. harness.augment.space from mappings) does not pull in every stage.
_EXPORTS: dict[str, str] = {
    "AugmentInfo": "harness.augment",
    "BatchAugmentInfo": "harness.augment",
    "BatchSoftAugment": "harness.augment",
    "BatchSoftNoise": "harness.augment",
    "BatchSoftPipeline": "harness.augment",
    "BatchSoftRandomCrop": "harness.augment",
    "BatchSoftRandomErasing": "harness.augment",
    "COMBINE_RULES": "harness.targets",
    "LABEL_SMOOTHING_CONVENTIONS": "harness.loss",
    "SIGNED_OPS": "harness.augment",
    "SoftCompose": "harness.augment",
    "SoftNoise": "harness.augment",
    "SoftRandomCrop": "harness.augment",
    "SoftRandomErasing": "harness.augment",
    "SoftTrivialAugment": "harness.augment",
    "TA_OPS": "harness.augment",
    "apply_ta_op": "harness.augment",
    "combine_confidences": "harness.targets",
    "label_smoothing_targets_other": "harness.loss",
    "label_smoothing_targets_uniform": "harness.loss",
    "magnitude_bins": "harness.augment",
    "op_id": "harness.augment",
    "severity_from_magnitude": "harness.augment",
    "soft_cross_entropy": "harness.loss",
    "soft_targets": "harness.targets",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


if TYPE_CHECKING:  # pragma: no cover - static analysers see the eager imports
    from harness.augment import AugmentInfo
    from harness.augment import BatchAugmentInfo
    from harness.augment import BatchSoftAugment
    from harness.augment import BatchSoftNoise
    from harness.augment import BatchSoftPipeline
    from harness.augment import BatchSoftRandomCrop
    from harness.augment import BatchSoftRandomErasing
    from harness.targets import COMBINE_RULES
    from harness.loss import LABEL_SMOOTHING_CONVENTIONS
    from harness.augment import SIGNED_OPS
    from harness.augment import SoftCompose
    from harness.augment import SoftNoise
    from harness.augment import SoftRandomCrop
    from harness.augment import SoftRandomErasing
    from harness.augment import SoftTrivialAugment
    from harness.augment import TA_OPS
    from harness.augment import apply_ta_op
    from harness.targets import combine_confidences
    from harness.loss import label_smoothing_targets_other
    from harness.loss import label_smoothing_targets_uniform
    from harness.augment import magnitude_bins
    from harness.augment import op_id
    from harness.augment import severity_from_magnitude
    from harness.loss import soft_cross_entropy
    from harness.targets import soft_targets
