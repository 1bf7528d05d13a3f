"""Chaining augmentation stages and combining their confidences (METHOD.md §1.3).

Every stage returns its own per-sample provenance; the pipeline multiplies (or takes the
minimum of) the stage confidences and floors the result at chance 1/K
(:func:`harness.combine_confidences`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from harness.augment._common import AugmentInfo, BatchAugmentInfo, check_batch, check_image, check_num_classes
from harness.targets import COMBINE_RULES, combine_confidences

__all__ = ["SoftCompose", "BatchSoftPipeline"]


def _check_rule(rule: str) -> str:
    if rule not in COMBINE_RULES:
        raise ValueError(f"combine must be one of {list(COMBINE_RULES)}, got {rule!r}")
    return rule


class SoftCompose:
    """Per-sample chain of soft transforms: ``(image) -> (image, confidence, [AugmentInfo, ...])``.

    Args:
        transforms: per-sample stages, each ``stage(image) -> (image, AugmentInfo)``.
        num_classes: K >= 2 (confidence floor 1/K).
        combine: ``"product"`` (reference) or ``"min"``.
    """

    def __init__(self, transforms: Sequence, num_classes: int, combine: str = "product") -> None:
        self.transforms = list(transforms)
        self.num_classes = check_num_classes(num_classes)
        self.combine = _check_rule(combine)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, float, list[AugmentInfo]]:
        check_image(image)
        infos: list[AugmentInfo] = []
        for t in self.transforms:
            image, info = t(image)
            infos.append(info)
        if not infos:
            return image, 1.0, infos
        conf = combine_confidences(
            [torch.tensor([i.confidence], dtype=torch.float64) for i in infos], self.num_classes, self.combine
        )
        return image, float(conf[0]), infos


class BatchSoftPipeline:
    """Batched chain of soft stages on a whole [N, C, H, W] batch (CPU or CUDA).

    Args:
        stages: batched stages, each ``stage(images, generator=g) -> (images, BatchAugmentInfo)``.
        num_classes: K >= 2 (confidence floor 1/K).
        combine: ``"product"`` (reference) or ``"min"``.

    Calling it returns ``(images, confidences [N] float32, [BatchAugmentInfo, ...])``.
    """

    def __init__(self, stages: Sequence, num_classes: int, combine: str = "product") -> None:
        self.stages = list(stages)
        self.num_classes = check_num_classes(num_classes)
        self.combine = _check_rule(combine)

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[BatchAugmentInfo]]:
        check_batch(images)
        infos: list[BatchAugmentInfo] = []
        for stage in self.stages:
            images, info = stage(images, generator=generator)
            infos.append(info)
        if not infos:
            return images, torch.ones(images.shape[0], device=images.device), infos
        conf = combine_confidences([i.confidences.float() for i in infos], self.num_classes, self.combine)
        return images, conf, infos
