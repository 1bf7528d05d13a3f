"""Soft augmentations with per-sample provenance (per-sample and batched).

Every stage reports, per sample, which op was applied, its signed magnitude, its severity
in [0, 1] and the resulting label confidence in [1/K, 1]. Every stage follows one protocol
(:class:`SampleStage` / :class:`BatchStage`: ``sample_params`` / ``apply`` / ``forward``), and
every TrivialAugmentWide op is one row of :data:`TA_TABLE` (``harness/augment/ops.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness._lazy import lazy_exports

# name -> module; imported on first access so that importing a light submodule
# (e.g. harness.augment.space from mappings) does not pull in every stage.
_EXPORTS: dict[str, str] = {
    "AugmentInfo": "harness.augment._common",
    "BatchAugmentInfo": "harness.augment._common",
    "BatchSoftAugment": "harness.augment.batch_trivial",
    "BatchSoftNoise": "harness.augment.noise",
    "BatchSoftPipeline": "harness.augment.pipeline",
    "BatchSoftRandomCrop": "harness.augment.crop",
    "BatchSoftRandomErasing": "harness.augment.erasing",
    "SIGNED_OPS": "harness.augment.space",
    "SoftCompose": "harness.augment.pipeline",
    "SoftNoise": "harness.augment.noise",
    "SoftRandomCrop": "harness.augment.crop",
    "SoftRandomErasing": "harness.augment.erasing",
    "SoftTrivialAugment": "harness.augment.trivial",
    "TA_OPS": "harness.augment.space",
    "TA_TABLE": "harness.augment.ops",
    "TAOp": "harness.augment.ops",
    "SampleStage": "harness.augment._common",
    "BatchStage": "harness.augment._common",
    "apply_ta_op": "harness.augment.trivial",
    "magnitude_bins": "harness.augment.space",
    "op_id": "harness.augment.space",
    "severity_from_magnitude": "harness.augment.space",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


if TYPE_CHECKING:  # pragma: no cover - static analysers see the eager imports
    from harness.augment._common import AugmentInfo
    from harness.augment._common import BatchAugmentInfo
    from harness.augment.batch_trivial import BatchSoftAugment
    from harness.augment.noise import BatchSoftNoise
    from harness.augment.pipeline import BatchSoftPipeline
    from harness.augment.crop import BatchSoftRandomCrop
    from harness.augment.erasing import BatchSoftRandomErasing
    from harness.augment.space import SIGNED_OPS
    from harness.augment.pipeline import SoftCompose
    from harness.augment.noise import SoftNoise
    from harness.augment.crop import SoftRandomCrop
    from harness.augment.erasing import SoftRandomErasing
    from harness.augment.trivial import SoftTrivialAugment
    from harness.augment.space import TA_OPS
    from harness.augment.ops import TA_TABLE, TAOp
    from harness.augment._common import BatchStage, SampleStage
    from harness.augment.trivial import apply_ta_op
    from harness.augment.space import magnitude_bins
    from harness.augment.space import op_id
    from harness.augment.space import severity_from_magnitude
