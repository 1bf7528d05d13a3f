"""Soft augmentations with per-sample provenance (per-sample and batched).

Every stage reports, per sample, which op was applied, its signed magnitude, its severity
in [0, 1] and the resulting label confidence in [1/K, 1].
"""

from harness.augment._common import AugmentInfo, BatchAugmentInfo
from harness.augment.batch_trivial import BatchSoftAugment
from harness.augment.crop import BatchSoftRandomCrop, SoftRandomCrop
from harness.augment.erasing import BatchSoftRandomErasing, SoftRandomErasing
from harness.augment.noise import BatchSoftNoise, SoftNoise
from harness.augment.pipeline import BatchSoftPipeline, SoftCompose
from harness.augment.space import SIGNED_OPS, TA_OPS, magnitude_bins, op_id, severity_from_magnitude
from harness.augment.trivial import SoftTrivialAugment, apply_ta_op

__all__ = [
    "AugmentInfo",
    "BatchAugmentInfo",
    "BatchSoftAugment",
    "BatchSoftNoise",
    "BatchSoftPipeline",
    "BatchSoftRandomCrop",
    "BatchSoftRandomErasing",
    "SIGNED_OPS",
    "SoftCompose",
    "SoftNoise",
    "SoftRandomCrop",
    "SoftRandomErasing",
    "SoftTrivialAugment",
    "TA_OPS",
    "apply_ta_op",
    "magnitude_bins",
    "op_id",
    "severity_from_magnitude",
]
