"""Presets against the worked values of METHOD.md §3.6; HVS lists against the raw points of §3.3.1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.augment.space import MAGNITUDE_FREE_OPS, TA_OPS, magnitude_bins
from mappings import (
    PRESETS,
    MappingSet,
    Polynomial,
    Table,
    crop_mapping,
    erasing_mapping,
    noise_mapping,
    preset,
)
from mappings.presets import CONTRAST_HVS, OCCLUSION_HVS, ROTATION_HVS

TOL = 6e-4  # the §3.6 values are rounded to 3 decimals


def reference_severity(op: str, magnitude: float) -> float:
    """x of METHOD §2.2 / §3.6 (Translate: float |m| / 32, as the reference code and the §3.6 table)."""
    m = abs(magnitude)
    if op in ("TranslateX", "TranslateY"):
        return m / 32.0
    if op == "Rotate":
        return m / 135.0
    if op == "Posterize":
        return 1.0 - magnitude / 8.0
    if op == "Solarize":
        return 1.0 - magnitude
    return m


# METHOD §3.6: op, bin i, poly_chance K=10, poly_chance K=100, poly_custom, smoothened (+, -), exact_hvs.
# A single smoothened value applies to both signs (symmetric or unsigned op).
WORKED = [
    ("ShearX", 10, 0.902, 0.892, 0.967, (0.977, 0.977), 0.985),
    ("ShearX", 30, 0.118, 0.030, 0.706, (0.932, 0.932), 0.945),
    ("TranslateX", 10, 0.900, 0.890, 0.967, (0.990, 0.990), 0.888),
    ("TranslateX", 20, 0.600, 0.560, 0.867, (0.845, 0.845), 0.776),
    ("TranslateX", 30, 0.100, 0.010, 0.700, (0.216, 0.216), 0.216),
    ("Rotate", 10, 0.900, 0.890, 0.967, (0.977, 0.977), 0.985),
    ("Rotate", 30, 0.100, 0.010, 0.700, (0.931, 0.931), 0.945),
    ("Brightness", 20, 0.608, 0.569, 0.869, (0.960, 0.915), 0.975),
    ("Brightness", 30, 0.118, 0.030, 0.706, (0.864, 0.353), 0.320),
    ("Color", 30, 0.118, 0.030, 0.706, (1.000, 0.951), 1.000),
    ("Contrast", 30, 0.118, 0.030, 0.706, (0.976, 0.353), 0.320),
    ("Sharpness", 30, 0.118, 0.030, 0.706, (0.992, 0.889), 1.000),
    ("Posterize", 20, 0.775, 0.752, 0.925, (0.998, 0.998), 1.000),
    ("Posterize", 30, 0.494, 0.443, 0.831, (0.860, 0.860), 1.000),
    ("Solarize", 20, 0.600, 0.560, 0.867, (0.734, 0.734), 1.000),
    ("Solarize", 30, 0.100, 0.010, 0.700, (0.512, 0.512), 1.000),
]
WORKED_IDS = [f"{row[0]}-{row[1]}" for row in WORKED]

SIGNED = {"ShearX", "TranslateX", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}


def signed_cases(op: str, i: int):
    """(sign index, signed magnitude, severity) for bin i: both signs for signed ops, + only otherwise."""
    m = float(magnitude_bins(op)[i])
    signs = (1.0, -1.0) if op in SIGNED else (1.0,)
    return [(j, sign * m, reference_severity(op, m)) for j, sign in enumerate(signs)]


@pytest.mark.parametrize("op, i, chance10, chance100, custom, smooth, hvs", WORKED, ids=WORKED_IDS)
def test_worked_values_of_method_3_6(op, i, chance10, chance100, custom, smooth, hvs):
    sets = {
        "polynomial_chance/10": (preset("polynomial_chance", 10), (chance10, chance10)),
        "polynomial_chance/100": (preset("polynomial_chance", 100), (chance100, chance100)),
        "polynomial_custom": (preset("polynomial_custom", 10), (custom, custom)),
        "smoothened": (preset("smoothened", 10), smooth),
        "exact_hvs": (preset("exact_hvs", 10), (hvs, hvs)),
    }
    for label, (ms, expected) in sets.items():
        for j, magnitude, severity in signed_cases(op, i):
            got = ms.confidence(op, magnitude, severity)
            assert got == pytest.approx(expected[j], abs=TOL), (label, magnitude)
            batch = ms(torch.tensor([TA_OPS.index(op)]), torch.tensor([magnitude]), torch.tensor([severity]))
            assert float(batch[0]) == pytest.approx(expected[j], abs=TOL), (label, magnitude)


@pytest.mark.parametrize("op", ["TranslateY", "ShearY"])
def test_y_ops_mirror_x_ops(op):
    twin = op.replace("Y", "X")
    for name in PRESETS:
        ms = preset(name, 100)
        for i in (5, 17, 30):
            for _, m, s in signed_cases(twin, i):
                assert ms.confidence(op, m, s) == ms.confidence(twin, m, s)


def test_hard_label_ops_per_preset():
    for name in PRESETS:
        ms = preset(name, 10)
        for op in MAGNITUDE_FREE_OPS:
            assert ms.mapping_for(op, 0.0) is None and ms.confidence(op, 0.0, 0.0) == 1.0
    hvs = preset("exact_hvs", 10)
    for op in ("Color", "Sharpness", "Posterize", "Solarize"):
        assert hvs.mapping_for(op, 1.0) is None and hvs.mapping_for(op, -1.0) is None
    smooth = preset("smoothened", 10)
    assert smooth.mapping_for("Color", 0.5) is None and smooth.mapping_for("Color", -0.5) is not None


@pytest.mark.parametrize("name, p_min", [("polynomial_chance", None), ("polynomial_custom", 0.7)])
@pytest.mark.parametrize("k", [10, 100, 200])
def test_polynomial_presets_soften_every_magnitude_op_symmetrically(name, p_min, k):
    ms = preset(name, k)
    expected = Polynomial(1.0 / k if p_min is None else p_min, 2)
    for op in TA_OPS:
        if op in MAGNITUDE_FREE_OPS:
            continue
        assert ms.mapping_for(op, 1.0) == expected and ms.mapping_for(op, -1.0) == expected, op
    assert ms.num_classes == k and ms.floor == 1.0 / k and ms.name == name


def test_smoothened_posterize_uses_bits_minus_two_over_six():
    ms = preset("smoothened", 10)
    for bits in range(2, 9):
        x = 1.0 - (bits - 2) / 6
        assert ms.confidence("Posterize", float(bits), 1.0 - bits / 8) == pytest.approx(1 - 0.14 * x**10)


def test_exact_hvs_reproduces_the_31_bin_lists_at_every_bin():
    ms = preset("exact_hvs", 10)
    for i in range(31):
        for op, table_value in [
            ("Rotate", ROTATION_HVS[i]),
            ("ShearX", ROTATION_HVS[i]),
            ("TranslateX", OCCLUSION_HVS[30 - i]),
            ("Brightness", CONTRAST_HVS[30 - i]),
            ("Contrast", CONTRAST_HVS[30 - i]),
        ]:
            for _, m, s in signed_cases(op, i):
                assert ms.confidence(op, m, s) == pytest.approx(table_value, abs=1e-5), (op, i, m)


def test_exact_hvs_tables_are_tables_over_severity():
    ms = preset("exact_hvs", 10)
    rotate = ms.mapping_for("Rotate", 1.0)
    assert isinstance(rotate, Table) and len(rotate.severities) == 31
    assert rotate.severities[-1] == 1.0
    assert ms.mapping_for("ShearX", 1.0).severities[-1] == pytest.approx(0.99)
    assert not rotate.is_monotone  # rotation curve 1 rises again after 135 deg * 27/30
    assert ms.mapping_for("Contrast", -1.0).is_monotone


def test_exact_hvs_is_floored_at_chance_for_many_classes():
    # occlusion HVS minimum 0.216 is above 1/10 but a 2-class set floors at 0.5
    assert preset("exact_hvs", 2).confidence("TranslateX", 32.0, 1.0) == 0.5
    assert preset("exact_hvs", 10).confidence("TranslateX", 32.0, 1.0) == pytest.approx(0.216)


# ----------------------------------------------------------------------------- HVS lists from raw points
# METHOD §3.3.1, typed from the table (thesis code data points).
OCCLUSION_V = [0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 1.0]
OCCLUSION_CURVES = [
    [0.22, 0.42, 0.44, 0.60, 0.56, 0.64, 0.62, 0.72, 1.0],
    [0.18, 0.42, 0.62, 0.64, 0.62, 0.73, 0.80, 0.72, 1.0],
    [0.22, 0.48, 0.62, 0.74, 0.72, 0.76, 0.78, 0.83, 1.0],
    [0.24, 0.47, 0.60, 0.74, 0.72, 0.80, 0.86, 0.87, 1.0],
    [0.22, 0.58, 0.64, 0.72, 0.78, 0.82, 0.76, 0.77, 1.0],
]
OCCLUSION_MEAN_DOC = [0.216, 0.474, 0.584, 0.688, 0.680, 0.750, 0.764, 0.782, 1.0]
ROTATION_ANGLES = [0, 30, 60, 90, 120, 150]
ROTATION_CURVE_1 = [1.00, 0.99, 0.98, 0.97, 0.93, 0.96]
CONTRAST_LEVELS = [0.044, 0.061, 0.098, 0.956]
CONTRAST_CURVES = [
    [0.00, 0.28, 0.96, 1.0],
    [0.06, 0.30, 0.97, 1.0],
    [0.20, 0.60, 0.94, 1.0],
    [0.58, 0.90, 0.98, 1.0],
    [0.76, 0.88, 0.98, 1.0],
]
CONTRAST_MEAN_DOC = [0.32, 0.592, 0.966, 1.0]


def test_occlusion_list_reproduces_from_raw_points():
    mean = np.mean(OCCLUSION_CURVES, axis=0)
    np.testing.assert_allclose(mean, OCCLUSION_MEAN_DOC, atol=1e-9)
    rebuilt = np.interp(np.linspace(0, 1, 31), OCCLUSION_V, mean)
    np.testing.assert_allclose(OCCLUSION_HVS, rebuilt, rtol=0, atol=1e-3)


def test_rotation_list_reproduces_from_raw_points():
    rebuilt = np.interp(np.linspace(0, 135, 31), ROTATION_ANGLES, ROTATION_CURVE_1)
    np.testing.assert_allclose(ROTATION_HVS, rebuilt, rtol=0, atol=1e-3)


def test_contrast_list_reproduces_from_raw_points():
    mean = np.mean(CONTRAST_CURVES, axis=0)
    np.testing.assert_allclose(mean, CONTRAST_MEAN_DOC, atol=1e-9)
    rebuilt = np.interp(np.linspace(0, 0.99, 31), CONTRAST_LEVELS, mean)
    np.testing.assert_allclose(CONTRAST_HVS, rebuilt, rtol=0, atol=1e-3)


def test_hvs_lists_have_31_bins_in_unit_interval():
    for values in (OCCLUSION_HVS, ROTATION_HVS, CONTRAST_HVS):
        assert len(values) == 31 and all(0.0 <= v <= 1.0 for v in values)
    assert OCCLUSION_HVS[0] == 0.216 and OCCLUSION_HVS[-1] == 1.0
    assert min(ROTATION_HVS) == 0.9315 and min(CONTRAST_HVS) == 0.32  # the smoothened p_min values


# ----------------------------------------------------------------------------- preset() and helpers
def test_preset_names_and_errors():
    assert PRESETS == ("polynomial_chance", "polynomial_custom", "exact_hvs", "smoothened")
    assert all(isinstance(preset(n, 10), MappingSet) for n in PRESETS)
    with pytest.raises(ValueError, match="polynomial_chance.*polynomial_custom.*exact_hvs.*smoothened"):
        preset("exact_model_accuracy", 10)
    with pytest.raises(ValueError, match="num_classes"):
        preset("exact_hvs", 1)
    with pytest.raises(TypeError, match="num_classes"):
        preset("exact_hvs", "10")


def test_single_stage_helpers_match_method_examples():
    # §3.6: soft RE on CIFAR-100, a = 0.2 -> 0.802, a = 0.8 -> 0.208 (k = 1, p_min = 1/K)
    assert erasing_mapping(100) == Polynomial(0.01, 1)
    assert erasing_mapping(100)(0.2) == pytest.approx(0.802)
    assert erasing_mapping(100)(0.8) == pytest.approx(0.208)
    # §3.6: soft crop on CIFAR-10, tx = ty = 9.6 px -> v = 0.49 -> c = 1 - 0.9 * 0.51**2 = 0.766
    v = (32 - 9.6) ** 2 / 32**2
    assert crop_mapping(10) == Polynomial(0.1, 2)
    assert crop_mapping(10)(1 - v) == pytest.approx(0.766, abs=TOL)
    # §2.4: full-image noise sigma <= 0.1 gives c >= 0.993; patch noise rho = 0.64, sigma = 1 gives ~0.71
    assert noise_mapping() == Polynomial(0.3, 2)
    assert noise_mapping()(0.1) == pytest.approx(0.993)
    assert noise_mapping()(0.64) == pytest.approx(0.71, abs=5e-3)
    with pytest.raises(ValueError, match="num_classes"):
        erasing_mapping(1)
    with pytest.raises(TypeError, match="num_classes"):
        crop_mapping(2.0)
