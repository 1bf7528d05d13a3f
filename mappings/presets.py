"""The reference code's TrivialAugment mappings as :class:`MappingSet` presets; single-stage mappings.

Presets (``mapping_approach`` of the reference code, METHOD.md §3):

- ``polynomial_chance`` (§3.1): ``Polynomial(1/K, k=2)`` for every op with a magnitude, both signs.
- ``polynomial_custom`` (§3.2): ``Polynomial(0.7, k=2)`` for the same ops.
- ``exact_hvs`` (§3.3.3): piecewise-linear :class:`Table` s over the 31-bin human-vision lists of §3.3.2.
- ``smoothened`` (§3.3.4, ``smoothened_hvs_or_model_accuracy``): hand-fitted polynomials per op and sign.

Identity, AutoContrast and Equalize keep c = 1 in every preset. Every preset floors at 1/K
(the :class:`MappingSet` floor). Severities are those the augmentation computes
(``harness.augment.space``); the reference
indexes by TA bin i, which the tables below turn into severity knots.
"""

from __future__ import annotations

from mappings.base import check_num_classes
from mappings.mapping_set import MappingSet
from mappings.ops import TRIVIAL_AUGMENT_WIDE
from mappings.polynomial import Polynomial
from mappings.table import Table

__all__ = [
    "PRESETS",
    "preset",
    "erasing_mapping",
    "crop_mapping",
    "noise_mapping",
    "OCCLUSION_HVS",
    "ROTATION_HVS",
    "CONTRAST_HVS",
]

#: Preset names accepted by :func:`preset`.
PRESETS: tuple[str, ...] = ("polynomial_chance", "polynomial_custom", "exact_hvs", "smoothened")

# Human-vision accuracy lists on the 31 TrivialAugment bins, copied verbatim from METHOD.md §3.3.2.
# Provenance: hard-coded in the authors' code (trivial_augment.py, random_erasing.py); built in the
# thesis code by np.interp of the raw study points of METHOD §3.3.1 (occlusion: mean of 5 curves,
# likely Tang et al. 2018; rotation: curve 1 of 4; contrast: mean of 5 curves; the rotation and
# contrast studies are unidentified). Values rounded to 4 decimals.
#: Human accuracy at visible fraction v = i/30 (index i).
OCCLUSION_HVS: tuple[float, ...] = (
    0.216, 0.388, 0.5107, 0.584, 0.6533, 0.6853, 0.68, 0.7267, 0.7547, 0.764, 0.776, 0.7876,
    0.7988, 0.8099, 0.8211, 0.8323, 0.8435, 0.8547, 0.8658, 0.877, 0.8882, 0.8994, 0.9106, 0.9217,
    0.9329, 0.9441, 0.9553, 0.9665, 0.9776, 0.9888, 1.0,
)  # fmt: skip
#: Human accuracy at rotation angle 4.5 * i degrees (index i).
ROTATION_HVS: tuple[float, ...] = (
    1.0, 0.9985, 0.997, 0.9955, 0.994, 0.9925, 0.991, 0.9895, 0.988, 0.9865, 0.985,
    0.9835, 0.982, 0.9805, 0.979, 0.9775, 0.976, 0.9745, 0.973, 0.9715, 0.97, 0.964, 0.958, 0.952,
    0.946, 0.94, 0.934, 0.9315, 0.936, 0.9405, 0.945,
)  # fmt: skip
#: Human accuracy at remaining contrast level 0.033 * i (index i).
CONTRAST_HVS: tuple[float, ...] = (
    0.32, 0.32, 0.6425, 0.9660, 0.9673, 0.9687, 0.9700, 0.9713, 0.9726, 0.9739,
    0.9752, 0.9765, 0.9778, 0.9791, 0.9804, 0.9817, 0.9830, 0.9843, 0.9857, 0.9870, 0.9883, 0.9896,
    0.9909, 0.9922, 0.9935, 0.9948, 0.9961, 0.9974, 0.9987, 1.0, 1.0,
)  # fmt: skip

_NUM_BINS = 31
#: Ops with a magnitude (the ones the polynomial presets soften), in TrivialAugmentWide order.
_MAGNITUDE_OPS: tuple[str, ...] = tuple(
    op for op in TRIVIAL_AUGMENT_WIDE.names if op not in TRIVIAL_AUGMENT_WIDE.magnitude_free
)


def _bin_severities(max_severity: float) -> tuple[float, ...]:
    """Severity of TA bins i = 0..30 for ops whose severity is linear in i: ``max_severity * i / 30``."""
    return tuple(max_severity * i / (_NUM_BINS - 1) for i in range(_NUM_BINS))


def _polynomial_all(p_min: float, k: float) -> dict[str, Polynomial]:
    mapping = Polynomial(p_min=p_min, k=k)
    return {op: mapping for op in _MAGNITUDE_OPS}


def _exact_hvs() -> dict[str, Table]:
    # Rotate: bin i = 4.5 i degrees = severity i/30. Shear bin i (|m| = 0.033 i) is treated as a
    # rotation by 4.5 i degrees (METHOD §3.3.3), so its knots sit at severity 0.033 i.
    rotate = Table(_bin_severities(1.0), ROTATION_HVS)
    shear = Table(_bin_severities(0.99), ROTATION_HVS)
    # Translate bin i -> accuracy at visibility 1 - i/30 (the list reversed).
    translate = Table(_bin_severities(1.0), OCCLUSION_HVS[::-1])
    # Brightness/Contrast |m| = 0.033 i -> accuracy at contrast level 0.033 (30 - i), both signs.
    contrast = Table(_bin_severities(0.99), CONTRAST_HVS[::-1])
    return {
        "ShearX": shear,
        "ShearY": shear,
        "TranslateX": translate,
        "TranslateY": translate,
        "Rotate": rotate,
        "Brightness": contrast,
        "Contrast": contrast,
    }


def _smoothened() -> dict[str, Polynomial]:
    # METHOD §3.3.4, [authors' code] final values. p_min: minimum of the HVS curve or of the proxy
    # accuracy; k hand-chosen. Color with m > 0 keeps c = 1 (no "Color+" key).
    shear_rotate = Polynomial(0.9315, 1)
    translate = Polynomial(0.216, 4)
    return {
        "ShearX": shear_rotate,
        "ShearY": shear_rotate,
        "TranslateX": translate,
        "TranslateY": translate,
        "Rotate": shear_rotate,
        "Brightness+": Polynomial(0.86, 3),
        "Brightness-": Polynomial(0.32, 5),
        "Color-": Polynomial(0.95, 3),
        "Contrast+": Polynomial(0.976, 2),
        "Contrast-": Polynomial(0.32, 5),
        "Sharpness+": Polynomial(0.992, 1),
        "Sharpness-": Polynomial(0.884, 4),
        # x = 1 - (bits - 2)/6 = s / 0.75 with s = 1 - bits/8.
        "Posterize": Polynomial(0.86, 10, s_max=0.75),
        "Solarize": Polynomial(0.512, 1.5),
    }


def preset(name: str, num_classes: int) -> MappingSet:
    """The TrivialAugment :class:`MappingSet` ``name`` (one of :data:`PRESETS`) for K = ``num_classes``.

    Raises:
        ValueError: unknown ``name`` (the message lists :data:`PRESETS`) or ``num_classes`` < 2.
        TypeError: ``num_classes`` is not an int.
    """
    num_classes = check_num_classes(num_classes)
    if name == "polynomial_chance":
        mappings = _polynomial_all(1.0 / num_classes, 2)
    elif name == "polynomial_custom":
        mappings = _polynomial_all(0.7, 2)
    elif name == "exact_hvs":
        mappings = _exact_hvs()
    elif name == "smoothened":
        mappings = _smoothened()
    else:
        raise ValueError(f"name must be one of {list(PRESETS)}, got {name!r}")
    return MappingSet(mappings, num_classes, name=name)


def erasing_mapping(num_classes: int) -> Polynomial:
    """Soft Random Erasing (METHOD §2.3): ``Polynomial(1/K, k=1)``, i.e. ``c = 1 - (1 - 1/K) * a``.

    Severity = erased area fraction a in [0, 1].
    """
    return Polynomial(1.0 / check_num_classes(num_classes), 1)


def crop_mapping(num_classes: int) -> Polynomial:
    """Soft crop (METHOD §2.5, SA): ``Polynomial(1/K, k=2)``, i.e. ``c = 1 - (1 - 1/K) * (1 - v)**2``.

    Severity = 1 - v, the invisible fraction of the image after the crop, in [0, 1].
    """
    return Polynomial(1.0 / check_num_classes(num_classes), 2)


def noise_mapping() -> Polynomial:
    """Soft noise injection (METHOD §2.4): ``Polynomial(0.3, k=2)``, i.e. ``c = 1 - 0.7 * (rho * sigma)**2``.

    Severity = masked area fraction rho times noise std sigma (on [0, 1] images), in [0, 1].
    """
    return Polynomial(0.3, 2)
