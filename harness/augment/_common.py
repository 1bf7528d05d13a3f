"""The stage protocol, provenance records and validation helpers shared by every augmentation stage.

Every stage (TrivialAugment, Random Erasing, noise, soft crop, and the hard flip / pad-crop)
follows one protocol, in a per-sample and a batched form:

=========================================  ==============================================================
per-sample (:class:`SampleStage`)          batched (:class:`BatchStage`)
=========================================  ==============================================================
``sample_params(image) -> dict``           ``sample_params(n, height, width, device=None,
(global torch RNG, torchvision's order;    generator=None) -> dict`` (drawn from ``generator`` on its
``make_params`` is the same method)        device, returned on ``device``)
``apply(image, **params)``                 ``apply(images, **params, generator=None)``
``-> (image, AugmentInfo)``                ``-> (images, BatchAugmentInfo)`` (``generator`` only for
                                           draws that are not parameters, e.g. the erasing fill)
``forward(image)`` = ``apply(image,        ``forward(images, generator=None)`` = ``apply(images,
**sample_params(image))``                  **sample_params(n, H, W, images.device, generator),
                                           generator=generator)``
=========================================  ==============================================================

and reports per-sample provenance in the same shape (:class:`AugmentInfo`,
:class:`BatchAugmentInfo`) so that the trainer can combine confidences without knowing which
stage produced them. ``stage`` (a class attribute) is the stage's kind name in a config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mappings.base import check_num_classes  # one validator for K, shared with mappings
from torch import nn

__all__ = [
    "AugmentInfo",
    "BatchAugmentInfo",
    "SampleStage",
    "BatchStage",
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


class SampleStage(nn.Module):
    """Per-sample stage protocol (see the module docstring): subclasses define ``stage``,
    :meth:`sample_params` and :meth:`apply`."""

    stage: str = ""

    def sample_params(self, image: torch.Tensor) -> dict[str, Any]:  # pragma: no cover - abstract
        """Draw this sample's parameters from the global torch RNG."""
        raise NotImplementedError

    def make_params(self, image: torch.Tensor) -> dict[str, Any]:
        """torchvision v2's name for :meth:`sample_params`."""
        return self.sample_params(image)

    def apply(
        self, image: torch.Tensor, **params: Any
    ) -> tuple[torch.Tensor, AugmentInfo]:  # pragma: no cover - abstract
        """Apply the given parameters to one image ``[C, H, W]``."""
        raise NotImplementedError

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, AugmentInfo]:
        image = check_image(image)
        return self.apply(image, **self.sample_params(image))


class BatchStage(nn.Module):
    """Batched stage protocol (see the module docstring): subclasses define ``stage``,
    :meth:`sample_params` and :meth:`apply`."""

    stage: str = ""

    def sample_params(
        self, n: int, height: int, width: int, device: Any = None, generator: torch.Generator | None = None
    ) -> dict[str, Any]:  # pragma: no cover - abstract
        """Draw the parameters of ``n`` samples of size ``height x width``."""
        raise NotImplementedError

    def apply(
        self, images: torch.Tensor, generator: torch.Generator | None = None, **params: Any
    ) -> tuple[torch.Tensor, BatchAugmentInfo]:  # pragma: no cover - abstract
        """Apply per-sample parameters to a batch ``[N, C, H, W]``."""
        raise NotImplementedError

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, BatchAugmentInfo]:
        images = check_batch(images)
        n, _, height, width = images.shape
        params = self.sample_params(n, height, width, images.device, generator)
        return self.apply(images, **params, generator=generator)


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


# ----------------------------------------------------------------------------------------------
# helpers shared by the single-mapping stages (erasing, noise, soft crop)
# ----------------------------------------------------------------------------------------------
def is_number(x: object) -> bool:
    """True for python ints and floats (bools excluded)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_hard(hard: object) -> bool:
    """Validate the ``hard`` flag of a stage (a bool)."""
    if not isinstance(hard, bool):
        raise TypeError(f"hard must be a bool, got hard={hard!r}")
    return hard


def check_mapping(mapping: object):
    """Validate a stage mapping: a callable severity -> confidence."""
    if not callable(mapping):
        raise TypeError(f"mapping must be callable (severity -> confidence) or None, got mapping={mapping!r}")
    return mapping


def stage_confidence(mapping, severity: float, num_classes: int, hard: bool) -> float:
    """Scalar confidence of one sample: ``mapping(severity)`` clamped to [1/K, 1]; 1.0 for a hard stage."""
    if hard:
        return 1.0
    return min(max(float(mapping(severity)), 1.0 / num_classes), 1.0)


def stage_confidences(mapping, severities: torch.Tensor, num_classes: int, hard: bool) -> torch.Tensor:
    """Vectorised :func:`stage_confidence` for a tensor of severities [N] (same dtype and device)."""
    if hard:
        return torch.ones_like(severities)
    c = torch.as_tensor(mapping(severities), dtype=severities.dtype, device=severities.device)
    return c.clamp(1.0 / num_classes, 1.0)


def generator_device(generator: torch.Generator | None, device: object) -> torch.device:
    """Device on which random draws happen: the generator's, else ``device`` (default CPU)."""
    if generator is not None:
        return generator.device
    return torch.device("cpu") if device is None else torch.device(device)


def check_boxes(boxes: object, n: int, height: int, width: int, name: str = "boxes") -> torch.Tensor:
    """Validate integer boxes [N, 4] = (top, left, h, w) lying inside an H x W image; returns int64."""
    if not isinstance(boxes, torch.Tensor) or boxes.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an int64 tensor of shape [N, 4] (top, left, h, w), got {boxes!r}")
    if boxes.shape != (n, 4):
        raise ValueError(f"{name} must have shape [{n}, 4] (top, left, h, w), got shape={tuple(boxes.shape)}")
    top, left, h, w = boxes.long().unbind(1)
    ok = (h >= 0) & (w >= 0) & (top >= 0) & (left >= 0) & (top + h <= height) & (left + w <= width)
    if not bool(ok.all()):
        bad = int((~ok).nonzero()[0, 0])
        raise ValueError(
            f"{name} must lie inside the {height}x{width} image (0 <= top, 0 <= left, h >= 0, w >= 0, "
            f"top + h <= {height}, left + w <= {width}), got {name}[{bad}]={boxes[bad].tolist()}"
        )
    return boxes.long()


def box_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Boolean mask [N, 1, H, W], True inside each sample's box (empty when h*w == 0)."""
    top, left, h, w = boxes.unbind(1)
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # [N, H]
    in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # [N, W]
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
