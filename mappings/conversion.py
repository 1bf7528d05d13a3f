"""From augmentation magnitudes to the units of the human-vision (HVS) studies, and back to severity.

Two conversions live here, both documented in one place so that every assumption is visible:

1. :data:`CONVERSIONS` / :func:`study_intensity`: an augmentation op with its **signed magnitude**
   (the unit of ``harness.augment.space`` for TrivialAugment ops; the stage magnitude for the
   single stages ``random_erasing``, ``soft_crop``, ``noise`` and ``gaussian_blur``) -> the study
   distortion of ``datasets/hvs`` and the value **in that study's own units** (remaining contrast,
   noise width, blur std in 224-px pixels, percent visible, degrees).
2. :data:`STRENGTH_AXES` / :func:`to_strength`: a study value -> a **severity-like strength**
   ``x >= 0`` in which human accuracy *falls* as ``x`` grows (0 = undistorted). Psychometric
   functions are fitted on this axis (:mod:`mappings.fit`), because the confidence mappings of
   :mod:`mappings` are decreasing functions of severity.

The two are tied together by :func:`severity_link`: for every op with human data the strength is
a power law of the op's severity ``s`` in [0, 1] (``harness.augment.space``),
``x = scale * s ** power``, so a fitted Weibull psychometric function in ``x`` is *exactly* a
Weibull in ``s`` (``PsychometricFit.mapping(scale, power)``).

Conversion table (op -> study distortion; ``m`` = signed magnitude, ``s`` = severity,
``D`` = the shorter image side in pixels)
=================  ==================  ===============================  ============================
op (sign)          study distortion    study value (study units)        strength x (= scale * s^p)
=================  ==================  ===============================  ============================
Contrast (m <= 0)  contrast            remaining contrast c = 1 + m     1 - c = s
Brightness (m<=0)  contrast            c = 1 + m  [assumption A1]       1 - c = s
Rotate             rotation            folded angle |m| in degrees      |m| = 135 s  [A2]
TranslateX/Y       occlusion           100 (1 - |int m| / side) % vis.  1 - v = s  [A3]
Sharpness (m < 0)  low-pass            sqrt(6|m|/13) * 224 / D  [A4]    sqrt(6/13) (224/D) s^0.5
random_erasing     occlusion           100 (1 - a) % visible  [A3]      a = s
soft_crop          occlusion           100 (1 - m) % visible, m = 1-v   1 - v = s
noise              uniform-noise       w = sqrt(3) * sigma  [A5]        w = sqrt(3) s  [A6]
gaussian_blur      low-pass            sigma_px * 224 / D  [A4]         (no TA severity; m = px)
=================  ==================  ===============================  ============================

Ops **without** human data are listed in :data:`FALLBACK_OPS` with the default source of their
confidence curve: ``"proxy"`` (accuracy of a proxy model on the augmented data), ``"ssim"``
(image similarity) or ``"polynomial"`` (the reference's polynomial, METHOD.md §3.1):

=========================================================  ==========  =======================
op                                                         default     why
=========================================================  ==========  =======================
ShearX, ShearY                                             proxy       no human shear data
                                                                       (METHOD §3.3.3 borrows
                                                                       rotation: not done here)
Posterize, Solarize                                        proxy       no human data
Brightness+, Color+, Contrast+, Sharpness+                 proxy       only reductions were
                                                                       tested on humans
Color- (desaturation)                                      ssim        human data are binary
                                                                       (colour vs greyscale,
                                                                       ~2 points accuracy
                                                                       drop): no magnitude axis
Identity, AutoContrast, Equalize                           polynomial  magnitude-free: c = 1
=========================================================  ==========  =======================

Assumptions (stated, not verified against human data):

- **A1 Brightness.** torchvision's brightness factor ``1 + m < 1`` scales every pixel towards
  black, compressing the luminance range to a fraction ``1 + m`` of [0, 1]. Geirhos et al.
  compress the range by the same factor but around mid-grey (``x' = (1 - c)/2 + c x``). We map
  brightness reduction to remaining contrast ``c = 1 + m`` as METHOD.md §3.3.3 does; the
  Michelson contrast of a darkened image is unchanged, so this is probably pessimistic. Positive
  brightness has no human data (fallback).
- **A2 Rotation.** Human data exist only at 0, 90, 180 and 270 degrees. Angles are folded to
  ``[0, 180]`` (``min(|m| mod 360, 360 - |m| mod 360)``; 90 and 270 are treated as the same
  magnitude, their counts are pooled), and accuracy at an intermediate angle is **assumed** to be
  the linear interpolation in folded angle between the measured 0, 90 and 180 degree points.
  Intermediate rotations also introduce black corners, which the human stimuli (multiples of 90
  degrees, no corners) did not have, so the interpolation may be optimistic. With three points, a
  psychometric fit of rotation is not meaningful; use a ``Table``.
- **A3 Occlusion.** Tang et al. measured accuracy against the percentage of the *object* visible
  through Gaussian bubbles. We assume that the fraction of the *image* left visible by a translate,
  an erased rectangle or an SA-style crop plays the same role (the object fills the image; one
  contiguous occluder is as hard as bubbles of the same total area). Both are strong assumptions:
  bubbles spread the visible parts over the object, which is known to help recognition.
- **A4 Blur scale.** Geirhos et al. blurred 224 x 224 images with a Gaussian of std ``sigma`` in
  pixels. An image of shorter side ``D`` shows the object at ``D/224`` of that size, so a blur of
  ``sigma_D`` pixels is equivalent to ``sigma_224 = sigma_D * 224 / D`` (ImageNet images are
  resized so that the shorter side fits the network input, hence the shorter side).
  TrivialAugment Sharpness with factor ``1 + m < 1`` blends the image with torchvision's 3 x 3
  smoothing kernel (weights 1/13, centre 5/13): the blended kernel has per-axis variance
  ``|m| * 6/13`` px^2, and we match a Gaussian of the same variance,
  ``sigma_D = sqrt(6 |m| / 13)`` (at most 0.68 px, i.e. 4.7 px on 224 for CIFAR's D = 32).
- **A5 Noise.** Gaussian noise ``N(0, sigma^2)`` is matched to uniform noise on ``[-w, w]`` of the
  **same variance** ``w^2/3 = sigma^2``, so ``w = sqrt(3) * sigma``. In the human experiment the
  image contrast was first reduced to 0.3 (README of ``shared/data`` §2.2), so the same noise was
  added to a weaker signal than in our full-contrast augmentation: matching variance ignores
  this, which makes the human curve **pessimistic** for full-contrast images (signal-to-noise
  matching would use ``w = sqrt(3) * 0.3 * sigma``).
- **A6 Patch noise.** The noise stage's severity is ``min(rho * sigma, 1)`` with ``rho`` the
  noised area fraction; only full-image noise (``rho = 1``) is a clean match, and for patches we
  treat ``rho * sigma`` as an effective full-image sigma.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mappings.ops import TRIVIAL_AUGMENT_WIDE

__all__ = [
    "Conversion",
    "CONVERSIONS",
    "FALLBACK_OPS",
    "FALLBACK_SOURCES",
    "STAGE_OPS",
    "STRENGTH_AXES",
    "HVS_DISTORTIONS",
    "SeverityLink",
    "study_intensity",
    "to_strength",
    "severity_link",
    "fold_angle",
    "sharpness_blur_sigma",
    "blur_sigma_to_224",
]

_TA_OPS: tuple[str, ...] = TRIVIAL_AUGMENT_WIDE.names

#: Single augmentation stages (not TrivialAugment ops) that have a conversion. Magnitudes:
#: random_erasing = erased area fraction a; soft_crop = 1 - visibility; noise = sigma on [0, 1]
#: images; gaussian_blur = Gaussian std in pixels of the augmented image.
STAGE_OPS: tuple[str, ...] = ("random_erasing", "soft_crop", "noise", "gaussian_blur")

#: Default confidence source for ops without human data.
FALLBACK_SOURCES: tuple[str, ...] = ("proxy", "ssim", "polynomial")

#: Ops (``"Op"`` or signed ``"Op+"`` / ``"Op-"``) without human data -> default source.
FALLBACK_OPS: dict[str, str] = {
    "ShearX": "proxy",
    "ShearY": "proxy",
    "Posterize": "proxy",
    "Solarize": "proxy",
    "Brightness+": "proxy",
    "Color+": "proxy",
    "Contrast+": "proxy",
    "Sharpness+": "proxy",
    "Color-": "ssim",
    "Identity": "polynomial",
    "AutoContrast": "polynomial",
    "Equalize": "polynomial",
}

_REFERENCE_SIDE = 224.0  # Geirhos et al. image side in pixels
_SHARPNESS_VAR = 6.0 / 13.0  # per-axis variance of torchvision's 3x3 smoothing kernel, px^2


# ------------------------------------------------------------------------------ helpers
def _real(name: str, value: Any) -> float:
    if isinstance(value, (bool,)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    return value


def _image_hw(image_size: Any) -> tuple[int, int]:
    """``image_size`` as ``(H, W)``: an int side or an ``(H, W)`` pair of positive ints."""
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        h = w = int(image_size)
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2 and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in image_size
    ):
        h, w = (int(v) for v in image_size)
    else:
        raise TypeError(f"image_size must be an int or an (H, W) pair of ints, got {image_size!r}")
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return h, w


def fold_angle(degrees: float) -> float:
    """Rotation magnitude folded to [0, 180]: ``min(|d| mod 360, 360 - |d| mod 360)`` (A2)."""
    d = abs(_real("degrees", degrees)) % 360.0
    return min(d, 360.0 - d)


def blur_sigma_to_224(sigma_px: float, image_size: Any) -> float:
    """Gaussian blur std in pixels of an image of shorter side D -> std in 224-px pixels (A4)."""
    sigma_px = _real("sigma_px", sigma_px)
    if sigma_px < 0:
        raise ValueError(f"sigma_px must be >= 0, got {sigma_px!r}")
    return sigma_px * _REFERENCE_SIDE / min(_image_hw(image_size))


def sharpness_blur_sigma(magnitude: float) -> float:
    """Gaussian std (px of the augmented image) with the variance of TA Sharpness ``1 + m``, m < 0 (A4)."""
    m = _real("magnitude", magnitude)
    if not -1.0 <= m <= 0.0:
        raise ValueError(f"magnitude must be in [-1, 0] for the blur equivalent of Sharpness, got {m!r}")
    return math.sqrt(_SHARPNESS_VAR * -m)


# ------------------------------------------------------------------------------ table
@dataclass(frozen=True)
class Conversion:
    """One row of :data:`CONVERSIONS`.

    Attributes:
        distortion: study distortion (a ``datasets/hvs`` table name).
        sign: ``"-"`` (only magnitudes <= 0), ``"+"`` (only >= 0) or ``None`` (both signs).
        convert: ``(magnitude, (H, W)) -> value in the study's units``.
        description: the rule in words (with the assumption id of the module docstring).
    """

    distortion: str
    sign: str | None
    convert: Callable[[float, tuple[int, int]], float]
    description: str

    def applies(self, magnitude: float) -> bool:
        if self.sign == "-":
            return magnitude <= 0.0
        if self.sign == "+":
            return magnitude >= 0.0
        return True


def _translate(axis: int) -> Callable[[float, tuple[int, int]], float]:
    def convert(m: float, hw: tuple[int, int]) -> float:
        side = hw[axis]
        return 100.0 * max(0.0, 1.0 - math.trunc(abs(m)) / side)

    return convert


def _unit_interval(name: str, m: float) -> float:
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"magnitude of {name} must be in [0, 1], got {m!r}")
    return m


#: op -> :class:`Conversion` (the single documented table; see the module docstring).
CONVERSIONS: dict[str, Conversion] = {
    "Contrast": Conversion(
        "contrast", "-", lambda m, hw: 1.0 + m, "remaining contrast c = 1 + m for m <= 0"
    ),
    "Brightness": Conversion(
        "contrast", "-", lambda m, hw: 1.0 + m, "remaining contrast c = 1 + m for m <= 0 (A1)"
    ),
    "Rotate": Conversion("rotation", None, lambda m, hw: fold_angle(m), "folded angle in degrees (A2)"),
    "TranslateX": Conversion(
        "occlusion", None, _translate(1), "percent visible 100 (1 - |int m| / W) (A3)"
    ),
    "TranslateY": Conversion(
        "occlusion", None, _translate(0), "percent visible 100 (1 - |int m| / H) (A3)"
    ),
    "Sharpness": Conversion(
        "low-pass",
        "-",
        lambda m, hw: blur_sigma_to_224(sharpness_blur_sigma(m), hw),
        "low-pass std sqrt(6|m|/13) * 224 / D for m < 0 (A4)",
    ),
    "random_erasing": Conversion(
        "occlusion",
        None,
        lambda m, hw: 100.0 * (1.0 - _unit_interval("random_erasing", m)),
        "percent visible 100 (1 - a), a = erased area fraction (A3)",
    ),
    "soft_crop": Conversion(
        "occlusion",
        None,
        lambda m, hw: 100.0 * (1.0 - _unit_interval("soft_crop", m)),
        "percent visible 100 v, magnitude m = 1 - v (A3)",
    ),
    "noise": Conversion(
        "uniform-noise", None, lambda m, hw: math.sqrt(3.0) * abs(m), "uniform width w = sqrt(3) sigma (A5)"
    ),
    "gaussian_blur": Conversion(
        "low-pass", None, lambda m, hw: blur_sigma_to_224(abs(m), hw), "low-pass std sigma * 224 / D (A4)"
    ),
}


def study_intensity(op: str, magnitude: float, image_size: Any) -> tuple[str, float] | None:
    """``(study distortion, value in the study's units)`` for an op's signed magnitude, or None.

    Args:
        op: a TrivialAugment op name (``mappings.ops.TRIVIAL_AUGMENT_WIDE.names``) or a stage of :data:`STAGE_OPS`.
        magnitude: signed magnitude in the op's unit (TA units for TA ops).
        image_size: shorter-side-relevant size of the augmented image, an int side or ``(H, W)``.

    Returns:
        None when the op (or this sign of it) has no human data: see :data:`FALLBACK_OPS`.

    Raises:
        ValueError: unknown op (the message lists the known ones), NaN magnitude, bad image size.
    """
    if op not in _TA_OPS and op not in STAGE_OPS:
        raise ValueError(f"op must be one of {list(_TA_OPS) + list(STAGE_OPS)}, got {op!r}")
    m = _real("magnitude", magnitude)
    hw = _image_hw(image_size)
    conv = CONVERSIONS.get(op)
    if conv is None or not conv.applies(m):
        return None
    return conv.distortion, float(conv.convert(m, hw))


# ------------------------------------------------------------------------------ strength axes
_BINARY_LEVELS: dict[str, tuple[str, str]] = {
    "colour": ("colour", "greyscale"),
    "false-colour": ("true-colour", "opponent-colour"),
    "power-equalisation": ("original", "power-equalised"),
}


def _binary(distortion: str) -> Callable[[Any], float]:
    levels = _BINARY_LEVELS[distortion]

    def strength(value: Any) -> float:
        if value not in levels:
            raise ValueError(f"{distortion} condition must be one of {list(levels)}, got {value!r}")
        return float(levels.index(value))

    return strength


def _nonneg(name: str, fn: Callable[[float], float]) -> Callable[[Any], float]:
    def strength(value: Any) -> float:
        v = _real(f"{name} value", value)
        if v < 0:
            raise ValueError(f"{name} value must be >= 0, got {v!r}")
        return fn(v)

    return strength


def _contrast(c: float) -> float:
    if c > 1.0:
        raise ValueError(f"contrast value must be in [0, 1], got {c!r}")
    return 1.0 - c


def _occlusion(v: float) -> float:
    if v > 100.0:
        raise ValueError(f"occlusion value (percent visible) must be in [0, 100], got {v!r}")
    return 1.0 - v / 100.0


#: distortion -> (study value -> severity-like strength x >= 0, definition of x).
STRENGTH_AXES: dict[str, tuple[Callable[[Any], float], str]] = {
    "contrast": (_nonneg("contrast", _contrast), "x = 1 - c (fraction of contrast removed)"),
    "uniform-noise": (_nonneg("uniform-noise", lambda w: w), "x = w (noise width)"),
    "low-pass": (_nonneg("low-pass", lambda s: s), "x = Gaussian std in 224-px pixels"),
    "high-pass": (
        _nonneg("high-pass", lambda s: 0.0 if math.isinf(s) else 1.0 / s if s > 0 else math.inf),
        "x = 1 / std (filter std in 224-px pixels; unfiltered 'inf' -> 0)",
    ),
    "phase-scrambling": (_nonneg("phase-scrambling", lambda d: d), "x = phase noise width in degrees"),
    "rotation": (lambda v: fold_angle(v), "x = folded angle in [0, 180] degrees (A2)"),
    "eidolonI": (_nonneg("eidolonI", lambda r: r), "x = Eidolon reach"),
    "eidolonII": (_nonneg("eidolonII", lambda r: r), "x = Eidolon reach"),
    "eidolonIII": (_nonneg("eidolonIII", lambda r: r), "x = Eidolon reach"),
    "occlusion": (_nonneg("occlusion", _occlusion), "x = 1 - v (fraction of the object hidden)"),
    "colour": (_binary("colour"), "x = 0 colour, 1 greyscale"),
    "false-colour": (_binary("false-colour"), "x = 0 true colour, 1 opponent colour"),
    "power-equalisation": (_binary("power-equalisation"), "x = 0 original, 1 power-equalised"),
}

#: Every study distortion with a strength axis (= the ``datasets/hvs`` tables).
HVS_DISTORTIONS: tuple[str, ...] = tuple(STRENGTH_AXES)


def to_strength(distortion: str, value: Any) -> float:
    """Severity-like strength ``x`` (accuracy falls as x grows, 0 = undistorted) of a study value.

    ``value`` is in the study's units (``condition`` column of ``datasets/hvs``): a number, or the
    level name for the binary distortions. Raises ValueError for an unknown distortion (listing
    them) or a value outside the distortion's range.
    """
    if distortion not in STRENGTH_AXES:
        raise ValueError(f"distortion must be one of {list(STRENGTH_AXES)}, got {distortion!r}")
    return float(STRENGTH_AXES[distortion][0](value))


# ------------------------------------------------------------------------------ severity link
@dataclass(frozen=True)
class SeverityLink:
    """``x = scale * s ** power``: op severity ``s`` in [0, 1] -> strength ``x`` of ``distortion``."""

    distortion: str
    scale: float
    power: float = 1.0

    def strength(self, severity: float) -> float:
        return self.scale * float(severity) ** self.power


def severity_link(op: str, image_size: Any = 32) -> SeverityLink | None:
    """How the op's severity (``harness.augment.space`` / the stage) maps onto a study strength axis.

    Only for the signs with human data (negative Contrast/Brightness/Sharpness; both signs of
    Rotate/Translate; the stages except ``gaussian_blur``, which has no severity). Pass the result
    to ``PsychometricFit.mapping(scale=link.scale, power=link.power)``. None when there is no link.
    """
    if op not in _TA_OPS and op not in STAGE_OPS:
        raise ValueError(f"op must be one of {list(_TA_OPS) + list(STAGE_OPS)}, got {op!r}")
    hw = _image_hw(image_size)
    if op in ("Contrast", "Brightness"):
        return SeverityLink("contrast", 1.0)
    if op == "Rotate":
        return SeverityLink("rotation", 135.0)
    if op in ("TranslateX", "TranslateY", "random_erasing", "soft_crop"):
        return SeverityLink("occlusion", 1.0)
    if op == "Sharpness":
        return SeverityLink("low-pass", math.sqrt(_SHARPNESS_VAR) * _REFERENCE_SIDE / min(hw), 0.5)
    if op == "noise":
        return SeverityLink("uniform-noise", math.sqrt(3.0))
    return None
