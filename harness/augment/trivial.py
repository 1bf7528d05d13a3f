"""Per-sample soft TrivialAugmentWide (METHOD.md §2.2) on torchvision v2 functional ops.

:class:`SoftTrivialAugment` draws one op, one magnitude bin and one sign per image from
the global torch RNG in exactly torchvision v2 ``TrivialAugmentWide``'s order:

1. ``op = ops[int(torch.randint(len(ops), ()))]``;
2. only for ops with magnitudes: ``bin = int(torch.randint(num_bins, ()))``;
3. only for signed ops: negate the magnitude if ``torch.rand(()) <= 0.5``.

It then applies the op with :func:`apply_ta_op`, which calls
``torchvision.transforms.v2.functional`` exactly as ``TrivialAugmentWide`` does, so with
the same ``torch.manual_seed`` (and the default full op list) the output image equals
``TrivialAugmentWide()``'s bit for bit. In addition it returns the provenance of the
sample, an :class:`~harness.augment._common.AugmentInfo` with the op, the signed
magnitude, the severity (:func:`harness.augment.space.severity_from_magnitude`) and the
label confidence given by a confidence mapping (``mappings.preset``), or 1.0 when
``hard=True``.

The batched, device-resident counterpart is
:class:`harness.augment.batch_trivial.BatchSoftAugment`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from harness.augment._common import AugmentInfo, check_image, check_num_classes, max_value
from harness.augment.space import (
    SIGNED_OPS,
    TA_OPS,
    magnitude_bins,
    op_id,
    severity_from_magnitude,
    severity_scalar,
)

__all__ = [
    "apply_ta_op",
    "SoftTrivialAugment",
    "resolve_mapping",
    "validate_ops",
    "check_num_bins",
    "convert_fill",
]

FillType = float | int | Sequence[float] | None


def convert_fill(fill: FillType) -> float | list[float] | None:
    """Fill as torchvision stores it: None, a number, or a list of floats."""
    if fill is None or isinstance(fill, (int, float)):
        if isinstance(fill, bool):
            raise TypeError(f"fill must be None, a number or a sequence of numbers, got {fill!r}")
        return fill
    if isinstance(fill, (str, bytes)) or not isinstance(fill, Sequence):
        raise TypeError(f"fill must be None, a number or a sequence of numbers, got {fill!r}")
    return [float(v) for v in fill]


def apply_ta_op(
    image: torch.Tensor,
    op: str,
    magnitude: float,
    interpolation: InterpolationMode | str = InterpolationMode.NEAREST,
    fill: FillType = None,
) -> torch.Tensor:
    """Apply one TrivialAugmentWide op with a fixed signed ``magnitude`` (pure function).

    Calls ``torchvision.transforms.v2.functional`` with exactly the arguments of
    ``TrivialAugmentWide._apply_image_or_video_transform``:

    * ShearX/Y: ``F.affine(shear=degrees(atan(m)), center=[0, 0])``;
    * TranslateX/Y: ``F.affine(translate=int(m))``; Rotate: ``F.rotate(angle=m)``;
    * Brightness/Color/Contrast/Sharpness: ``F.adjust_*(factor=1 + m)``;
    * Posterize: ``F.posterize(bits=int(m))``; Solarize: ``F.solarize(threshold=bound * m)``
      with bound 255 for uint8 and 1.0 for floating images;
    * AutoContrast / Equalize: ``F.autocontrast`` / ``F.equalize``; Identity: unchanged.

    Args:
        image: tensor [..., C, H, W] (uint8 or floating), C in {1, 3}.
        op: an op name of :data:`harness.augment.space.TA_OPS`.
        magnitude: signed magnitude in the op's unit (ignored by magnitude-free ops).
        interpolation: interpolation of the geometric ops (TA default: NEAREST).
        fill: fill of the geometric ops: None (zeros), a number or one value per channel.

    Returns:
        The transformed image (a new tensor except for Identity, which returns ``image``,
        as torchvision does).
    """
    op_id(op)  # validates the name
    magnitude = float(magnitude)
    if not math.isfinite(magnitude):
        raise ValueError(f"magnitude must be finite, got {magnitude}")
    fill_ = convert_fill(fill)

    if op == "Identity":
        return image
    if op == "ShearX":
        return F.affine(
            image,
            angle=0.0,
            translate=[0, 0],
            scale=1.0,
            shear=[math.degrees(math.atan(magnitude)), 0.0],
            interpolation=interpolation,
            fill=fill_,
            center=[0, 0],
        )
    if op == "ShearY":
        return F.affine(
            image,
            angle=0.0,
            translate=[0, 0],
            scale=1.0,
            shear=[0.0, math.degrees(math.atan(magnitude))],
            interpolation=interpolation,
            fill=fill_,
            center=[0, 0],
        )
    if op == "TranslateX":
        return F.affine(
            image,
            angle=0.0,
            translate=[int(magnitude), 0],
            scale=1.0,
            interpolation=interpolation,
            shear=[0.0, 0.0],
            fill=fill_,
        )
    if op == "TranslateY":
        return F.affine(
            image,
            angle=0.0,
            translate=[0, int(magnitude)],
            scale=1.0,
            interpolation=interpolation,
            shear=[0.0, 0.0],
            fill=fill_,
        )
    if op == "Rotate":
        return F.rotate(image, angle=magnitude, interpolation=interpolation, fill=fill_)
    if op == "Brightness":
        return F.adjust_brightness(image, brightness_factor=1.0 + magnitude)
    if op == "Color":
        return F.adjust_saturation(image, saturation_factor=1.0 + magnitude)
    if op == "Contrast":
        return F.adjust_contrast(image, contrast_factor=1.0 + magnitude)
    if op == "Sharpness":
        return F.adjust_sharpness(image, sharpness_factor=1.0 + magnitude)
    if op == "Posterize":
        return F.posterize(image, bits=int(magnitude))
    if op == "Solarize":
        return F.solarize(image, threshold=max_value(image.dtype) * magnitude)
    if op == "AutoContrast":
        return F.autocontrast(image)
    if op == "Equalize":
        return F.equalize(image)
    raise AssertionError(op)  # pragma: no cover - op_id() rejected unknown names


def check_num_bins(num_magnitude_bins: object) -> int:
    """Validate the number of magnitude bins, an int >= 2."""
    n = num_magnitude_bins
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"num_magnitude_bins must be an int >= 2, got {num_magnitude_bins!r}")
    return num_magnitude_bins


def validate_ops(ops: Sequence[str] | None) -> tuple[str, ...]:
    """Validate an op subset (the paper's ``selected_transforms``); ``None`` = all 14 ops.

    The given order is kept (it defines which op an RNG draw selects). Raises ``ValueError``
    for an empty list, unknown names or duplicates, ``TypeError`` for a non-sequence.
    """
    if ops is None:
        return TA_OPS
    if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence):
        raise TypeError(f"ops must be a sequence of op names from {list(TA_OPS)}, got {ops!r}")
    ops = tuple(ops)
    if not ops:
        raise ValueError("ops must name at least one op")
    for name in ops:
        op_id(name)  # ValueError naming the allowed ops
    if len(set(ops)) != len(ops):
        raise ValueError(f"ops must not contain duplicates, got {list(ops)}")
    return ops


def resolve_mapping(mapping: Any, num_classes: int, hard: bool) -> Any:
    """Turn ``mapping`` (a preset name, a MappingSet, or None when ``hard``) into a MappingSet.

    A MappingSet is any object with ``num_classes``, ``confidence(op, magnitude, severity)``
    and ``__call__(op_ids, magnitudes, severities)`` (see ``mappings``).
    """
    if mapping is None:
        if hard:
            return None
        raise ValueError(
            "mapping must be a preset name or a MappingSet (None is only allowed with hard=True)"
        )
    if isinstance(mapping, str):
        import mappings  # deferred: the augmentations do not need it for hard=True with mapping=None

        return mappings.preset(mapping, num_classes)
    if not (callable(mapping) and hasattr(mapping, "num_classes") and hasattr(mapping, "confidence")):
        raise TypeError(
            "mapping must be a preset name or a MappingSet (callable with .num_classes and .confidence), "
            f"got {type(mapping).__name__}"
        )
    if mapping.num_classes != num_classes:
        raise ValueError(
            f"mapping.num_classes ({mapping.num_classes}) must equal num_classes ({num_classes})"
        )
    return mapping


class SoftTrivialAugment(torch.nn.Module):
    """TrivialAugmentWide that also reports per-sample provenance and a label confidence.

    Args:
        num_classes: K >= 2 (confidences are floored at 1/K by the mapping).
        mapping: a ``mappings.preset`` name (``"polynomial_chance"``, ``"polynomial_custom"``,
            ``"exact_hvs"``, ``"smoothened"``) or a MappingSet whose ``num_classes`` equals
            ``num_classes``. May be None only with ``hard=True``.
        hard: record provenance but report confidence 1.0 (plain TrivialAugment).
        num_magnitude_bins: number of magnitude bins (31 = TrivialAugmentWide).
        ops: optional subset of op names to sample from uniformly (the paper's
            ``selected_transforms``); default all 14 ops in torchvision order.
        interpolation: interpolation of the geometric ops (default NEAREST, as TA).
        fill: fill of the geometric ops: None (zeros), a number or one value per channel.

    ``forward(image)`` takes one image [C, H, W] (uint8 or float in [0, 1], C in {1, 3}) and
    returns ``(augmented_image, AugmentInfo)``.
    """

    def __init__(
        self,
        num_classes: int,
        mapping: Any = "polynomial_chance",
        *,
        hard: bool = False,
        num_magnitude_bins: int = 31,
        ops: Sequence[str] | None = None,
        interpolation: InterpolationMode | str = InterpolationMode.NEAREST,
        fill: FillType = None,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.hard = bool(hard)
        self.num_magnitude_bins = check_num_bins(num_magnitude_bins)
        self.ops = validate_ops(ops)
        self.interpolation = interpolation
        self.fill = convert_fill(fill)
        self.mapping = resolve_mapping(mapping, self.num_classes, self.hard)
        # Python floats of torchvision's float32 magnitude tables (None = no magnitude).
        self._magnitudes: dict[str, list[float] | None] = {}
        for name in self.ops:
            mags = magnitude_bins(name, num_magnitude_bins)
            self._magnitudes[name] = None if mags is None else [float(v) for v in mags]
        self._severity_cache: dict[tuple[int, int], dict[str, tuple[list[float], list[float]]]] = {}

    def _draw(self) -> tuple[str, int, bool]:
        """Draw ``(op, bin, negated)`` from the global torch RNG in torchvision's order."""
        op = self.ops[int(torch.randint(len(self.ops), ()))]
        if self._magnitudes[op] is None:
            return op, -1, False
        bin_index = int(torch.randint(self.num_magnitude_bins, ()))
        negated = op in SIGNED_OPS and bool(torch.rand(()) <= 0.5)
        return op, bin_index, negated

    def _magnitude(self, op: str, bin_index: int, negated: bool) -> float:
        mags = self._magnitudes[op]
        if mags is None:
            return 0.0
        return -mags[bin_index] if negated else mags[bin_index]

    def sample(self) -> tuple[str, float]:
        """Draw ``(op, signed magnitude)`` from the global torch RNG in torchvision's order."""
        op, bin_index, negated = self._draw()
        return op, self._magnitude(op, bin_index, negated)

    def _bin_severities(self, height: int, width: int) -> dict[str, tuple[list[float], list[float]]]:
        """Severities of every (op, bin, sign) for an image size, computed once with
        :func:`severity_from_magnitude` (a per-sample tensor call would cost ~0.1 ms)."""
        key = (height, width)
        table = self._severity_cache.get(key)
        if table is None:
            table = {}
            for op, mags in self._magnitudes.items():
                if mags is None:
                    continue
                m = torch.tensor(mags, dtype=torch.float64)
                ids = torch.full((len(mags),), op_id(op))
                pos = severity_from_magnitude(ids, m, height, width).tolist()
                neg = severity_from_magnitude(ids, -m, height, width).tolist()
                table[op] = (pos, neg)
            if len(self._severity_cache) > 16:
                self._severity_cache.clear()
            self._severity_cache[key] = table
        return table

    def info(
        self, op: str, magnitude: float, height: int, width: int, severity: float | None = None
    ) -> AugmentInfo:
        """Provenance of applying ``op`` at ``magnitude`` to an image of size ``height`` x ``width``."""
        if severity is None:
            severity = severity_scalar(op, magnitude, height, width)
        if self.hard:
            confidence = 1.0
        else:
            confidence = float(self.mapping.confidence(op, float(magnitude), severity))
        return AugmentInfo(op=op, magnitude=float(magnitude), severity=severity, confidence=confidence)

    def apply(self, image: torch.Tensor, op: str, magnitude: float) -> tuple[torch.Tensor, AugmentInfo]:
        """Deterministic entry point: apply ``op`` at the signed ``magnitude`` (any TA op, even
        one outside ``ops``) and return ``(image, AugmentInfo)``."""
        image = check_image(image)
        op_id(op)
        magnitude = float(magnitude)
        if not math.isfinite(magnitude):
            raise ValueError(f"magnitude must be finite, got {magnitude}")
        out = apply_ta_op(image, op, magnitude, interpolation=self.interpolation, fill=self.fill)
        return out, self.info(op, magnitude, image.shape[-2], image.shape[-1])

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, AugmentInfo]:
        image = check_image(image)
        op, bin_index, negated = self._draw()
        magnitude = self._magnitude(op, bin_index, negated)
        out = apply_ta_op(image, op, magnitude, interpolation=self.interpolation, fill=self.fill)
        height, width = image.shape[-2], image.shape[-1]
        if bin_index < 0:
            severity = 0.0  # magnitude-free op
        else:
            severity = self._bin_severities(height, width)[op][1 if negated else 0][bin_index]
        return out, self.info(op, magnitude, height, width, severity=severity)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, hard={self.hard}, "
            f"num_magnitude_bins={self.num_magnitude_bins}, ops={list(self.ops)}, "
            f"interpolation={self.interpolation}, fill={self.fill}"
        )
