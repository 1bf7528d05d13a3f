"""The TrivialAugmentWide op space: op names, magnitude bins, signs and severities.

This is the single op specification shared by the per-sample path
(:class:`harness.SoftTrivialAugment`, built on torchvision v2 functional ops) and the
batched path (:class:`harness.BatchSoftAugment`). Nothing here touches pixels.

Magnitudes are exactly torchvision v2 ``TrivialAugmentWide._AUGMENTATION_SPACE`` with
31 bins (METHOD.md §2.2):

=============  =============================  ======  =====================================
op             magnitude (unit)               signed  severity s in [0, 1]
=============  =============================  ======  =====================================
Identity       none (0.0)                     no      0
ShearX/Y       linspace(0, 0.99) (shear m)    yes     |m|   (0 .. 0.99)
TranslateX/Y   linspace(0, 32) (pixels)       yes     |int(m)| / W (X) or / H (Y), capped at 1
Rotate         linspace(0, 135) (degrees)     yes     |m| / 135
Brightness     linspace(0, 0.99) (factor-1)   yes     |m|
Color          linspace(0, 0.99) (factor-1)   yes     |m|
Contrast       linspace(0, 0.99) (factor-1)   yes     |m|
Sharpness      linspace(0, 0.99) (factor-1)   yes     |m|
Posterize      bits 8 .. 2 (bits kept)        no      1 - bits/8  (0 .. 0.75)
Solarize       linspace(1, 0) (threshold as   no      1 - threshold
               a fraction of the max value)
AutoContrast   none (0.0)                     no      0
Equalize       none (0.0)                     no      0
=============  =============================  ======  =====================================

Translate severity deliberately differs from the reference code (METHOD.md §7.7): the
reference uses the float magnitude and a fixed side of 32 px, but the image is shifted by
``int(m)`` pixels. Here severity is the fraction of the image side that was actually
shifted out, ``|int(m)| / side``, using the real image size (so the same 32-px shift on a
64-px TinyImageNet image has severity 0.5, not 1).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "TA_OPS",
    "SIGNED_OPS",
    "MAGNITUDE_FREE_OPS",
    "GEOMETRIC_OPS",
    "op_id",
    "magnitude_bins",
    "severity_from_magnitude",
]

#: Op names in torchvision v2 ``TrivialAugmentWide`` order. An op id is an index into this tuple.
TA_OPS: tuple[str, ...] = (
    "Identity",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
)

SIGNED_OPS: frozenset[str] = frozenset(
    {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}
)
MAGNITUDE_FREE_OPS: frozenset[str] = frozenset({"Identity", "AutoContrast", "Equalize"})
GEOMETRIC_OPS: frozenset[str] = frozenset({"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"})

_OP_INDEX = {name: i for i, name in enumerate(TA_OPS)}


def op_id(name: str) -> int:
    """Index of ``name`` in :data:`TA_OPS`; raises ``ValueError`` naming the allowed ops."""
    try:
        return _OP_INDEX[name]
    except (KeyError, TypeError):
        raise ValueError(f"op must be one of {list(TA_OPS)}, got {name!r}") from None


def magnitude_bins(op: str, num_bins: int = 31) -> torch.Tensor | None:
    """Unsigned magnitudes of ``op`` for ``num_bins`` bins (float64), or ``None`` for magnitude-free ops.

    Identical to torchvision v2 ``TrivialAugmentWide._AUGMENTATION_SPACE`` (its values are
    computed in float32 there; we return the same float32 values widened to float64).
    """
    op_id(op)  # validates
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"num_bins must be an int >= 2, got {num_bins!r}")
    if op in MAGNITUDE_FREE_OPS:
        return None
    if op in ("ShearX", "ShearY", "Brightness", "Color", "Contrast", "Sharpness"):
        mags = torch.linspace(0.0, 0.99, num_bins)
    elif op in ("TranslateX", "TranslateY"):
        mags = torch.linspace(0.0, 32.0, num_bins)
    elif op == "Rotate":
        mags = torch.linspace(0.0, 135.0, num_bins)
    elif op == "Posterize":
        mags = (8 - (torch.arange(num_bins) / ((num_bins - 1) / 6))).round().int().to(torch.float32)
    elif op == "Solarize":
        mags = torch.linspace(1.0, 0.0, num_bins)
    else:  # pragma: no cover - every op is covered above
        raise AssertionError(op)
    return mags.to(torch.float64)


def severity_from_magnitude(
    op_ids: torch.Tensor, magnitudes: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Per-sample severity in [0, 1] for TrivialAugment ops (vectorised).

    Args:
        op_ids: int tensor [N] of indices into :data:`TA_OPS`.
        magnitudes: float tensor [N] of signed magnitudes in each op's unit (see module doc).
        height, width: image size in pixels (for Translate severity).

    Returns:
        float32 tensor [N] on the device of ``magnitudes``.
    """
    if op_ids.shape != magnitudes.shape or op_ids.ndim != 1:
        raise ValueError(
            f"op_ids and magnitudes must be 1-D tensors of equal shape, got {tuple(op_ids.shape)} "
            f"and {tuple(magnitudes.shape)}"
        )
    if op_ids.numel() and (int(op_ids.min()) < 0 or int(op_ids.max()) >= len(TA_OPS)):
        raise ValueError(f"op_ids must lie in [0, {len(TA_OPS) - 1}] (indices into TA_OPS)")
    m = magnitudes.to(torch.float32)
    a = m.abs()
    ids = op_ids.to(m.device)
    sev = torch.zeros_like(a)

    def where(name: str, value: torch.Tensor) -> None:
        nonlocal sev
        sev = torch.where(ids == _OP_INDEX[name], value, sev)

    for name in ("ShearX", "ShearY", "Brightness", "Color", "Contrast", "Sharpness"):
        where(name, a)
    where("TranslateX", torch.trunc(a) / float(width))
    where("TranslateY", torch.trunc(a) / float(height))
    where("Rotate", a / 135.0)
    where("Posterize", 1.0 - m / 8.0)
    where("Solarize", 1.0 - m)
    return sev.clamp_(0.0, 1.0)


def severity_scalar(op: str, magnitude: float, height: int, width: int) -> float:
    """Scalar convenience wrapper of :func:`severity_from_magnitude` for one sample."""
    sev = severity_from_magnitude(
        torch.tensor([op_id(op)]), torch.tensor([float(magnitude)], dtype=torch.float64), height, width
    )
    value = float(sev[0])
    assert math.isfinite(value)
    return value
