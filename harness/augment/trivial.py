"""Per-sample soft TrivialAugmentWide (METHOD.md §2.2) on torchvision v2 functional ops.

:class:`SoftTrivialAugment` draws one op, one magnitude bin and one sign per image from
the global torch RNG in exactly torchvision v2 ``TrivialAugmentWide``'s order:

1. ``op = ops[int(torch.randint(len(ops), ()))]``;
2. only for ops with magnitudes: ``bin = int(torch.randint(num_bins, ()))``;
3. only for signed ops: negate the magnitude if ``torch.rand(()) <= 0.5``.

It then applies the op with :func:`apply_ta_op`, which calls the op's per-sample kernel in the
op table :mod:`harness.augment.ops` -- ``torchvision.transforms.v2.functional`` exactly as
``TrivialAugmentWide`` calls it -- so with
the same ``torch.manual_seed`` (and the default full op list) the output image equals
``TrivialAugmentWide()``'s bit for bit. In addition it returns the provenance of the
sample, an :class:`~harness.augment._common.AugmentInfo` with the op, the signed
magnitude, the severity (:func:`harness.augment.ops.severity_from_magnitude`) and the
label confidence given by a confidence mapping (``mappings.preset``), or 1.0 when
``hard=True``.

It follows the per-sample stage protocol (:class:`~harness.augment._common.SampleStage`):
``sample_params(image) -> {"op", "magnitude"}``, ``apply(image, op, magnitude)``, ``forward(image)``.
Arguments, validation and the mapping are shared with the batched, device-resident counterpart
:class:`harness.augment.batch_trivial.BatchSoftAugment` through
:class:`harness.augment.ta_base.TrivialAugmentBase`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torchvision.transforms.v2 import InterpolationMode

from harness.augment._common import AugmentInfo, SampleStage, check_image
from harness.augment.ops import TA_TABLE, op_id, severity_from_magnitude, severity_scalar
from harness.augment.ta_base import (
    FillType,
    TrivialAugmentBase,
    check_num_bins,
    convert_fill,
    resolve_mapping,
    validate_ops,
)

__all__ = [
    "apply_ta_op",
    "SoftTrivialAugment",
    "resolve_mapping",
    "validate_ops",
    "check_num_bins",
    "convert_fill",
]


def apply_ta_op(
    image: torch.Tensor,
    op: str,
    magnitude: float,
    interpolation: InterpolationMode | str = InterpolationMode.NEAREST,
    fill: FillType = None,
) -> torch.Tensor:
    """Apply one TrivialAugmentWide op with a fixed signed ``magnitude`` (pure function).

    Calls the op's per-sample kernel (``TA_TABLE[op_id(op)].image``), i.e.
    ``torchvision.transforms.v2.functional`` with exactly the arguments of
    ``TrivialAugmentWide._apply_image_or_video_transform``:

    * ShearX/Y: ``F.affine(shear=degrees(atan(m)), center=[0, 0])``;
    * TranslateX/Y: ``F.affine(translate=int(m))``; Rotate: ``F.rotate(angle=m)``;
    * Brightness/Color/Contrast/Sharpness: ``F.adjust_*(factor=1 + m)``;
    * Posterize: ``F.posterize(bits=int(m))``; Solarize: ``F.solarize(threshold=bound * m)``
      with bound 255 for uint8 and 1.0 for floating images;
    * AutoContrast / Equalize: ``F.autocontrast`` / ``F.equalize``; Identity: unchanged.

    Args:
        image: tensor [..., C, H, W] (uint8 or floating), C in {1, 3}.
        op: an op name of :data:`harness.augment.ops.TA_OPS`.
        magnitude: signed magnitude in the op's unit (ignored by magnitude-free ops).
        interpolation: interpolation of the geometric ops (TA default: NEAREST).
        fill: fill of the geometric ops: None (zeros), a number or one value per channel.

    Returns:
        The transformed image (a new tensor except for Identity, which returns ``image``,
        as torchvision does).
    """
    row = TA_TABLE[op_id(op)]  # validates the name
    magnitude = float(magnitude)
    if not math.isfinite(magnitude):
        raise ValueError(f"magnitude must be finite, got {magnitude}")
    return row.image(image, magnitude, interpolation, convert_fill(fill))


class SoftTrivialAugment(TrivialAugmentBase, SampleStage):
    """TrivialAugmentWide that also reports per-sample provenance and a label confidence.

    Args: those of :class:`~harness.augment.ta_base.TrivialAugmentBase` (``num_classes``,
    ``mapping``, ``hard``, ``num_magnitude_bins``, ``ops``, ``fill``), and
        interpolation: interpolation of the geometric ops (default NEAREST, as TA).

    ``forward(image)`` takes one image [C, H, W] (uint8 or float in [0, 1], C in {1, 3}) and
    returns ``(augmented_image, AugmentInfo)``.
    """

    def __init__(
        self, *args: Any, interpolation: InterpolationMode | str = InterpolationMode.NEAREST, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.interpolation = interpolation
        # Python floats of torchvision's float32 magnitude tables (None = no magnitude).
        self._magnitudes: dict[str, list[float] | None] = {
            name: None if TA_TABLE[op_id(name)].bins is None else self._table[op_id(name)].tolist()
            for name in self.ops
        }
        self._severity_cache: dict[tuple[int, int], dict[tuple[str, float], float]] = {}

    def _draw(self) -> tuple[str, int, bool]:
        """Draw ``(op, bin, negated)`` from the global torch RNG in torchvision's order."""
        op = self.ops[int(torch.randint(len(self.ops), ()))]
        if self._magnitudes[op] is None:
            return op, -1, False
        bin_index = int(torch.randint(self.num_magnitude_bins, ()))
        negated = TA_TABLE[op_id(op)].signed and bool(torch.rand(()) <= 0.5)
        return op, bin_index, negated

    def sample_params(self, image: torch.Tensor | None = None) -> dict[str, Any]:
        """Draw ``{"op", "magnitude"}`` (signed) from the global torch RNG in torchvision's order.

        ``image`` is not needed (TrivialAugment's draws do not depend on the image size).
        """
        op, bin_index, negated = self._draw()
        mags = self._magnitudes[op]
        if mags is None:
            return {"op": op, "magnitude": 0.0}
        return {"op": op, "magnitude": -mags[bin_index] if negated else mags[bin_index]}

    def sample(self) -> tuple[str, float]:
        """Draw ``(op, signed magnitude)``; :meth:`sample_params` as a tuple."""
        params = self.sample_params()
        return params["op"], params["magnitude"]

    def _bin_severities(self, height: int, width: int) -> dict[tuple[str, float], float]:
        """Severities of every (op, signed bin magnitude) for an image size, computed once with
        :func:`severity_from_magnitude` (a per-sample tensor call would cost ~0.1 ms)."""
        key = (height, width)
        table = self._severity_cache.get(key)
        if table is None:
            table = {}
            for op, mags in self._magnitudes.items():
                if mags is None:
                    table[(op, 0.0)] = 0.0
                    continue
                m = torch.tensor(mags, dtype=torch.float64)
                ids = torch.full((len(mags),), op_id(op))
                for signed in (m, -m):
                    sev = severity_from_magnitude(ids, signed, height, width).tolist()
                    table.update(zip(((op, v) for v in signed.tolist()), sev))
            if len(self._severity_cache) > 16:
                self._severity_cache.clear()
            self._severity_cache[key] = table
        return table

    def info(
        self, op: str, magnitude: float, height: int, width: int, severity: float | None = None
    ) -> AugmentInfo:
        """Provenance of applying ``op`` at ``magnitude`` to an image of size ``height`` x ``width``."""
        if severity is None:
            severity = self._bin_severities(height, width).get((op, float(magnitude)))
        if severity is None:
            severity = severity_scalar(op, magnitude, height, width)
        confidence = self._confidence(op, magnitude, severity)
        return AugmentInfo(op=op, magnitude=float(magnitude), severity=severity, confidence=confidence)

    def apply(self, image: torch.Tensor, op: str, magnitude: float) -> tuple[torch.Tensor, AugmentInfo]:
        """Deterministic entry point: apply ``op`` at the signed ``magnitude`` (any TA op, even
        one outside ``ops``) and return ``(image, AugmentInfo)``."""
        image = check_image(image)
        out = apply_ta_op(image, op, magnitude, interpolation=self.interpolation, fill=self.fill)
        return out, self.info(op, magnitude, image.shape[-2], image.shape[-1])

    def extra_repr(self) -> str:
        return f"{self._repr_fields()}, interpolation={self.interpolation}, fill={self.fill}"
