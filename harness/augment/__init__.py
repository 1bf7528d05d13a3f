"""Soft augmentations with per-sample provenance (per-sample and batched).

Every stage reports, per sample, which op was applied, its signed magnitude, its severity
in [0, 1] and the resulting label confidence in [1/K, 1]. Every stage follows one protocol
(:class:`SampleStage` / :class:`BatchStage`: ``sample_params`` / ``apply`` / ``forward``), and
every TrivialAugmentWide op is one row of :data:`TA_TABLE` (``harness/augment/ops.py``).
"""

from __future__ import annotations

from harness.augment._common import AugmentInfo, BatchAugmentInfo, BatchStage, SampleStage
from harness.augment.batch_trivial import BatchSoftAugment
from harness.augment.crop import BatchSoftRandomCrop, SoftRandomCrop
from harness.augment.erasing import BatchSoftRandomErasing, SoftRandomErasing
from harness.augment.noise import BatchSoftNoise, SoftNoise
from harness.augment.ops import TA_TABLE, TAOp
from harness.augment.pipeline import BatchSoftPipeline, SoftCompose
from harness.augment.space import magnitude_bins, op_id, severity_from_magnitude, SIGNED_OPS, TA_OPS
from harness.augment.trivial import apply_ta_op, SoftTrivialAugment

__all__ = [
    "AugmentInfo",
    "BatchAugmentInfo",
    "BatchSoftAugment",
    "BatchSoftNoise",
    "BatchSoftPipeline",
    "BatchSoftRandomCrop",
    "BatchSoftRandomErasing",
    "BatchStage",
    "SIGNED_OPS",
    "SampleStage",
    "SoftCompose",
    "SoftNoise",
    "SoftRandomCrop",
    "SoftRandomErasing",
    "SoftTrivialAugment",
    "TAOp",
    "TA_OPS",
    "TA_TABLE",
    "apply_ta_op",
    "magnitude_bins",
    "op_id",
    "severity_from_magnitude",
]
