"""Shared validation helpers and provenance records for every augmentation stage.

Every stage (TrivialAugment, Random Erasing, noise, soft crop) reports per-sample
provenance in the same shape so that the trainer can combine confidences without
knowing which stage produced them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "AugmentInfo",
    "BatchAugmentInfo",
    "check_image",
    "check_batch",
    "check_num_classes",
    "max_value",
]


@dataclass(frozen=True)
class AugmentInfo:
    """Provenance of one augmented sample (per-sample transforms).

    Attributes:
        op: name of the operation applied (``"Identity"`` / ``"none"`` when nothing happened).
        magnitude: signed magnitude in the op's own unit (degrees, pixels, factor offset,
            area fraction, noise sigma, ...). 0.0 when the op has no magnitude.
        severity: normalised severity in [0, 1] fed to the confidence mapping.
        confidence: label confidence of the true class in [1/K, 1].
    """

    op: str
    magnitude: float
    severity: float
    confidence: float

    def as_dict(self) -> dict:
        return {
            "op": self.op,
            "magnitude": self.magnitude,
            "severity": self.severity,
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class BatchAugmentInfo:
    """Provenance of a batch (batched transforms). All tensors have shape [N].

    Attributes:
        stage: stage name (``"trivial_augment"``, ``"random_erasing"``, ``"noise"``, ``"soft_crop"``).
        op_ids: int64 op index. For TrivialAugment an index into ``TA_OPS``; for the other
            stages 0 = the stage did not fire, 1 = it fired.
        magnitudes: float32 signed magnitudes in the op's own unit.
        severities: float32 severities in [0, 1].
        confidences: float32 confidences in [1/K, 1] (all 1.0 for a hard stage).
    """

    stage: str
    op_ids: torch.Tensor
    magnitudes: torch.Tensor
    severities: torch.Tensor
    confidences: torch.Tensor


def max_value(dtype: torch.dtype) -> float:
    """Largest legal pixel value: 255 for uint8, 1.0 for floating images."""
    return 255.0 if dtype == torch.uint8 else 1.0


def _check_dtype(t: torch.Tensor, name: str) -> None:
    if t.dtype != torch.uint8 and not t.is_floating_point():
        raise TypeError(f"{name} must be a uint8 or floating-point tensor, got dtype={t.dtype}")


def check_image(image: object, name: str = "image") -> torch.Tensor:
    """Validate a single image tensor [C, H, W] with C in {1, 3}; uint8 or float in [0, 1]."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [C, H, W], got {type(image).__name__}")
    _check_dtype(image, name)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"{name} must have shape [C, H, W] with C in {{1, 3}}, got shape={tuple(image.shape)}")
    if image.shape[1] < 2 or image.shape[2] < 2:
        raise ValueError(f"{name} must be at least 2x2 pixels, got shape={tuple(image.shape)}")
    return image


def check_batch(images: object, name: str = "images") -> torch.Tensor:
    """Validate a batch [N, C, H, W] with C in {1, 3}; uint8 or float in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, C, H, W], got {type(images).__name__}")
    _check_dtype(images, name)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"{name} must have shape [N, C, H, W] with C in {{1, 3}}, got shape={tuple(images.shape)}"
        )
    if images.shape[2] < 2 or images.shape[3] < 2:
        raise ValueError(f"{name} must be at least 2x2 pixels, got shape={tuple(images.shape)}")
    return images


def check_num_classes(num_classes: object) -> int:
    """Validate K (number of classes), an int >= 2."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes}")
    return num_classes
