"""softbench harness: soft augmentations with per-sample provenance, soft targets and loss,
datasets, models, trainer, corruption benchmark and evaluation."""

from __future__ import annotations

from harness.augment import (
    apply_ta_op,
    AugmentInfo,
    BatchAugmentInfo,
    BatchSoftAugment,
    BatchSoftNoise,
    BatchSoftPipeline,
    BatchSoftRandomCrop,
    BatchSoftRandomErasing,
    magnitude_bins,
    op_id,
    severity_from_magnitude,
    SIGNED_OPS,
    SoftCompose,
    SoftNoise,
    SoftRandomCrop,
    SoftRandomErasing,
    SoftTrivialAugment,
    TA_OPS,
)
from harness.loss import (
    LABEL_SMOOTHING_CONVENTIONS,
    label_smoothing_targets_other,
    label_smoothing_targets_uniform,
    soft_cross_entropy,
)
from harness.targets import combine_confidences, COMBINE_RULES, soft_targets

__all__ = [
    "AugmentInfo",
    "BatchAugmentInfo",
    "BatchSoftAugment",
    "BatchSoftNoise",
    "BatchSoftPipeline",
    "BatchSoftRandomCrop",
    "BatchSoftRandomErasing",
    "COMBINE_RULES",
    "LABEL_SMOOTHING_CONVENTIONS",
    "SIGNED_OPS",
    "SoftCompose",
    "SoftNoise",
    "SoftRandomCrop",
    "SoftRandomErasing",
    "SoftTrivialAugment",
    "TA_OPS",
    "apply_ta_op",
    "combine_confidences",
    "label_smoothing_targets_other",
    "label_smoothing_targets_uniform",
    "magnitude_bins",
    "op_id",
    "severity_from_magnitude",
    "soft_cross_entropy",
    "soft_targets",
]
