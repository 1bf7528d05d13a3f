"""The TrivialAugmentWide op table: every op defined once, in one row.

Like torchvision's ``TrivialAugmentWide._AUGMENTATION_SPACE``, one row per op holds everything
the per-sample and the batched TrivialAugment need to know about it:

* ``name`` -- the key into the vocabulary :data:`mappings.ops.TRIVIAL_AUGMENT_WIDE`, which owns
  the op names, their order (an op id is an index into it) and which ops are signed
  (``row.signed``, ``row.op_id`` read it from there);
* ``bins(num_bins)`` -- the unsigned magnitudes (float32, torchvision's values), None for a
  magnitude-free op;
* ``severity(|m|, m, height, width)`` -- the severity in [0, 1] (vectorised, float32);
* ``image(image, m, interpolation, fill)`` -- the per-sample kernel, a
  ``torchvision.transforms.v2.functional`` call with exactly ``TrivialAugmentWide``'s arguments;
* ``batch(images, m64)`` -- the batched kernel with one magnitude per sample
  (:mod:`harness.augment.batched_ops`), or, for the geometric ops,
  ``affine(m64, height, width)`` -- the per-sample parameters of the inverse affine matrix
  (``center_x/y``, ``angle``, ``translate_x/y``, ``shear_x/y``; absent = 0) plus, for Rotate,
  ``quarter_turns`` -- torchvision's ``clone`` / ``rot90`` fast paths;
* ``invalid(m64)`` / ``invalid_message`` -- the magnitudes the batched path refuses (where
  torchvision would raise).

Magnitudes and severities (METHOD.md §2.2):

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

The functions below the table (:func:`magnitude_bins`, :func:`severity_from_magnitude`,
:func:`ta_inverse_affine_matrices`, :func:`geometric`, :func:`invalid_magnitudes`) read the rows;
no op is named anywhere else in the TrivialAugment code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.transforms.v2 import functional as F

from harness.augment import batched_ops as B
from harness.augment._common import max_value
from mappings.ops import TRIVIAL_AUGMENT_WIDE

__all__ = [
    "TAOp",
    "TA_TABLE",
    "VOCABULARY",
    "TA_OPS",
    "SIGNED_OPS",
    "MAGNITUDE_FREE_OPS",
    "GEOMETRIC_OPS",
    "op_id",
    "magnitude_bins",
    "severity_from_magnitude",
    "severity_scalar",
    "ta_inverse_affine_matrices",
    "quarter_turns",
    "geometric",
    "invalid_magnitudes",
]

#: the op vocabulary (names, order, signedness) this table implements
VOCABULARY = TRIVIAL_AUGMENT_WIDE

Tensor = torch.Tensor
#: the per-sample parameters an ``affine`` builder may set (absent ones are 0)
AFFINE_FIELDS = ("center_x", "center_y", "angle", "translate_x", "translate_y", "shear_x", "shear_y")


@dataclass(frozen=True, kw_only=True)
class TAOp:
    """One TrivialAugmentWide op (see the module docstring for every field)."""

    name: str
    bins: Callable[[int], Tensor] | None
    severity: Callable[[Tensor, Tensor, int, int], Tensor] | None
    image: Callable[[Tensor, float, Any, Any], Tensor]
    batch: Callable[[Tensor, Tensor], Tensor] | None = None
    affine: Callable[[Tensor, int, int], dict[str, Tensor]] | None = None
    quarter_turns: Callable[[Tensor, int, int], Tensor] | None = None
    invalid: Callable[[Tensor], Tensor] | None = None
    invalid_message: str = ""

    @property
    def op_id(self) -> int:
        """Index of the op in :data:`VOCABULARY` (and in :data:`TA_TABLE`)."""
        return VOCABULARY.op_id(self.name)

    @property
    def signed(self) -> bool:
        """Whether TrivialAugment negates the magnitude with probability 0.5 (from the vocabulary)."""
        return self.name in VOCABULARY.signed

    @property
    def geometric(self) -> bool:
        """Whether the batched path applies the op through one shared affine grid."""
        return self.affine is not None


# ---------------------------------------------------------------------------------------- kernels
# small builders shared by the X/Y twins and the four colour-factor ops


def _linspace(start: float, end: float) -> Callable[[int], Tensor]:
    return lambda num_bins: torch.linspace(start, end, num_bins)


def _posterize_bins(num_bins: int) -> Tensor:
    return (8 - (torch.arange(num_bins) / ((num_bins - 1) / 6))).round().int().to(torch.float32)


def _shear_image(axis: int) -> Callable[..., Tensor]:
    def kernel(image: Tensor, m: float, interpolation: Any, fill: Any) -> Tensor:
        shear = [0.0, 0.0]
        shear[axis] = math.degrees(math.atan(m))
        return F.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=shear,
                        interpolation=interpolation, fill=fill, center=[0, 0])
    return kernel


def _shear_affine(axis: str) -> Callable[[Tensor, int, int], dict[str, Tensor]]:
    # TA passes center=[0, 0] in pixels, i.e. the top-left corner: center_f = (-W/2, -H/2)
    return lambda m, h, w: {
        f"shear_{axis}": torch.atan(m) * B.RAD_TO_DEG,
        "center_x": torch.full_like(m, -0.5 * w),
        "center_y": torch.full_like(m, -0.5 * h),
    }


def _translate_image(axis: int) -> Callable[..., Tensor]:
    def kernel(image: Tensor, m: float, interpolation: Any, fill: Any) -> Tensor:
        translate = [0, 0]
        translate[axis] = int(m)
        return F.affine(image, angle=0.0, translate=translate, scale=1.0, interpolation=interpolation,
                        shear=[0.0, 0.0], fill=fill)
    return kernel


_FACTOR_MESSAGE = (
    "magnitudes of Brightness/Color/Contrast/Sharpness must be >= -1 (factor 1 + m must be >= 0)"
)


def _factor_op(name: str, image_kernel: Callable[[Tensor, float], Tensor],
               batch_kernel: Callable[[Tensor, Tensor], Tensor]) -> TAOp:
    """Brightness / Color / Contrast / Sharpness: factor ``1 + m`` on linspace(0, 0.99)."""
    return TAOp(
        name=name, bins=_linspace(0.0, 0.99), severity=lambda a, m, h, w: a,
        image=lambda x, m, interpolation, fill: image_kernel(x, 1.0 + m),
        batch=lambda x, m: batch_kernel(x, 1.0 + m),
        invalid=lambda m: 1.0 + m < 0, invalid_message=_FACTOR_MESSAGE,
    )


def _unchanged(x: Tensor, *_: Any) -> Tensor:
    return x


# ------------------------------------------------------------------------------------------ table

_ROWS: tuple[TAOp, ...] = (
    TAOp(name="Identity", bins=None, severity=None, image=_unchanged, batch=_unchanged),
    TAOp(name="ShearX", bins=_linspace(0.0, 0.99), severity=lambda a, m, h, w: a,
         image=_shear_image(0), affine=_shear_affine("x")),
    TAOp(name="ShearY", bins=_linspace(0.0, 0.99), severity=lambda a, m, h, w: a,
         image=_shear_image(1), affine=_shear_affine("y")),
    TAOp(name="TranslateX", bins=_linspace(0.0, 32.0), severity=lambda a, m, h, w: torch.trunc(a) / float(w),
         image=_translate_image(0), affine=lambda m, h, w: {"translate_x": torch.trunc(m)}),
    TAOp(name="TranslateY", bins=_linspace(0.0, 32.0), severity=lambda a, m, h, w: torch.trunc(a) / float(h),
         image=_translate_image(1), affine=lambda m, h, w: {"translate_y": torch.trunc(m)}),
    TAOp(name="Rotate", bins=_linspace(0.0, 135.0), severity=lambda a, m, h, w: a / 135.0,
         image=lambda x, m, interpolation, fill: F.rotate(x, angle=m, interpolation=interpolation, fill=fill),
         # rotate_image negates the angle
         affine=lambda m, h, w: {"angle": -B.python_mod(m, 360.0)}, quarter_turns=B.rotate_fast_path),
    _factor_op("Brightness", lambda x, f: F.adjust_brightness(x, brightness_factor=f), B.adjust_brightness),
    _factor_op("Color", lambda x, f: F.adjust_saturation(x, saturation_factor=f), B.adjust_saturation),
    _factor_op("Contrast", lambda x, f: F.adjust_contrast(x, contrast_factor=f), B.adjust_contrast),
    _factor_op("Sharpness", lambda x, f: F.adjust_sharpness(x, sharpness_factor=f), B.adjust_sharpness),
    TAOp(name="Posterize", bins=_posterize_bins, severity=lambda a, m, h, w: 1.0 - m / 8.0,
         image=lambda x, m, interpolation, fill: F.posterize(x, bits=int(m)),
         batch=lambda x, m: B.posterize(x, torch.trunc(m).to(torch.int64)),
         invalid=lambda m: (torch.trunc(m) < 0) | (torch.trunc(m) > 8),
         invalid_message="magnitudes of Posterize must give int(m) bits in [0, 8]"),
    TAOp(name="Solarize", bins=_linspace(1.0, 0.0), severity=lambda a, m, h, w: 1.0 - m,
         image=lambda x, m, interpolation, fill: F.solarize(x, threshold=max_value(x.dtype) * m),
         batch=lambda x, m: B.solarize(x, max_value(x.dtype) * m),
         invalid=lambda m: m > 1.0,
         invalid_message="magnitudes of Solarize must be <= 1 (threshold as a fraction of the max value)"),
    TAOp(name="AutoContrast", bins=None, severity=None,
         image=lambda x, m, interpolation, fill: F.autocontrast(x), batch=lambda x, m: F.autocontrast(x)),
    TAOp(name="Equalize", bins=None, severity=None,
         image=lambda x, m, interpolation, fill: F.equalize(x), batch=lambda x, m: F.equalize(x)),
)


def _build_table(rows: tuple[TAOp, ...]) -> tuple[TAOp, ...]:
    """The rows in vocabulary order; fails at import if they and the vocabulary disagree."""
    by_name = {row.name: row for row in rows}
    if len(by_name) != len(rows) or set(by_name) != set(VOCABULARY.names):
        raise ImportError(f"the TA op table rows {[r.name for r in rows]} must be exactly the vocabulary "
                          f"{list(VOCABULARY.names)}")
    table = tuple(by_name[name] for name in VOCABULARY.names)
    for row in table:
        if (row.bins is None) != (row.name in VOCABULARY.magnitude_free):
            raise ImportError(
                f"op {row.name}: bins must be None exactly for the vocabulary's magnitude-free ops"
            )
        if (row.batch is None) == (row.affine is None):
            raise ImportError(f"op {row.name}: give exactly one of batch (a kernel) and affine (a matrix)")
    geo = [row.op_id for row in table if row.geometric]
    if geo != list(range(geo[0], geo[-1] + 1)):  # the batched path groups them as one id range
        raise ImportError(f"the geometric ops must be contiguous in the vocabulary, got ids {geo}")
    return table


#: one row per op, in vocabulary order: ``TA_TABLE[op_id]``
TA_TABLE: tuple[TAOp, ...] = _build_table(_ROWS)

#: op names in torchvision v2 ``TrivialAugmentWide`` order. An op id is an index into this tuple.
TA_OPS: tuple[str, ...] = VOCABULARY.names
SIGNED_OPS: frozenset[str] = VOCABULARY.signed
MAGNITUDE_FREE_OPS: frozenset[str] = VOCABULARY.magnitude_free
GEOMETRIC_OPS: frozenset[str] = frozenset(row.name for row in TA_TABLE if row.geometric)
_GEOMETRIC_ROWS = tuple(row for row in TA_TABLE if row.geometric)


def op_id(name: str) -> int:
    """Index of ``name`` in :data:`TA_OPS`; raises ``ValueError`` naming the allowed ops."""
    return VOCABULARY.op_id(name)


# ---------------------------------------------------------------------- vectorised table readers


def magnitude_bins(op: str, num_bins: int = 31) -> torch.Tensor | None:
    """Unsigned magnitudes of ``op`` for ``num_bins`` bins (float64), or ``None`` for magnitude-free ops.

    Identical to torchvision v2 ``TrivialAugmentWide._AUGMENTATION_SPACE`` (its values are
    computed in float32 there; we return the same float32 values widened to float64).
    """
    row = TA_TABLE[op_id(op)]
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"num_bins must be an int >= 2, got {num_bins!r}")
    if row.bins is None:
        return None
    return row.bins(num_bins).to(torch.float64)


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
    if op_ids.numel() and (int(op_ids.min()) < 0 or int(op_ids.max()) >= len(TA_TABLE)):
        raise ValueError(f"op_ids must lie in [0, {len(TA_TABLE) - 1}] (indices into TA_OPS)")
    m = magnitudes.to(torch.float32)
    a = m.abs()
    ids = op_ids.to(m.device)
    sev = torch.zeros_like(a)
    for row in TA_TABLE:
        if row.severity is not None:
            sev = torch.where(ids == row.op_id, row.severity(a, m, height, width), sev)
    return sev.clamp_(0.0, 1.0)


def severity_scalar(op: str, magnitude: float, height: int, width: int) -> float:
    """Scalar convenience wrapper of :func:`severity_from_magnitude` for one sample."""
    sev = severity_from_magnitude(
        torch.tensor([op_id(op)]), torch.tensor([float(magnitude)], dtype=torch.float64), height, width
    )
    value = float(sev[0])
    assert math.isfinite(value)
    return value


def ta_inverse_affine_matrices(
    op_ids: torch.Tensor, magnitudes: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Inverse affine matrices (float64 [n, 6]) of the geometric ops, from their ``affine`` rows.

    ``op_ids`` must all be geometric (:data:`GEOMETRIC_OPS`); ``magnitudes`` are the signed
    magnitudes. Every row's parameters are computed on the whole magnitude vector and selected
    per sample, then :func:`harness.augment.batched_ops.inverse_affine_matrices` builds the
    matrices exactly as torchvision's ``_get_inverse_affine_matrix`` does for ``F.affine`` /
    ``F.rotate`` with ``TrivialAugmentWide``'s arguments.
    """
    m = magnitudes.to(torch.float64)
    ids = op_ids.to(m.device)
    zeros = torch.zeros(m.shape[0], dtype=torch.float64, device=m.device)
    p = dict.fromkeys(AFFINE_FIELDS, zeros)
    for row in _GEOMETRIC_ROWS:
        selected = ids == row.op_id
        for field, value in row.affine(m, height, width).items():
            p[field] = torch.where(selected, value, p[field])
    return B.inverse_affine_matrices(
        center=torch.stack([p["center_x"], p["center_y"]], dim=1),
        angle=p["angle"],
        translate=torch.stack([p["translate_x"], p["translate_y"]], dim=1),
        shear=torch.stack([p["shear_x"], p["shear_y"]], dim=1),
    )


def quarter_turns(op_ids: torch.Tensor, magnitudes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-sample quarter turns of the rows' no-grid fast paths (int64 [n]; -1 = sample the grid)."""
    k = torch.full(op_ids.shape, -1, dtype=torch.int64, device=magnitudes.device)
    for row in _GEOMETRIC_ROWS:
        if row.quarter_turns is not None:
            k = torch.where(op_ids == row.op_id, row.quarter_turns(magnitudes, height, width), k)
    return k


def geometric(
    images: torch.Tensor, op_ids: torch.Tensor, magnitudes: torch.Tensor, fill: Any = None
) -> torch.Tensor:
    """Apply the geometric ops, one op and float64 magnitude per sample, through ONE affine grid."""
    height, width = images.shape[-2:]
    ids = op_ids.to(images.device)
    m = magnitudes.to(device=images.device, dtype=torch.float64)
    matrices = ta_inverse_affine_matrices(ids, m, height, width)
    return B.affine_transform(images, matrices, quarter_turns(ids, m, height, width), fill)


def invalid_magnitudes(op_ids: torch.Tensor, magnitudes: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """``[(any sample invalid for these rows (bool scalar tensor), message), ...]`` in table order,
    one entry per distinct message; ``op_ids`` must be valid ids, ``magnitudes`` float64."""
    flags: dict[str, torch.Tensor] = {}
    for row in TA_TABLE:
        if row.invalid is not None:
            bad = (op_ids == row.op_id) & row.invalid(magnitudes)
            seen = flags.get(row.invalid_message)
            flags[row.invalid_message] = bad if seen is None else seen | bad
    return [(bad.any(), message) for message, bad in flags.items()]
