"""Accuracy -> confidence (mappings.normalize) and magnitude conversion (mappings.conversion)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.augment.space import SIGNED_OPS, TA_OPS, severity_scalar
from mappings import Psychometric, Table, from_dict
from mappings.conversion import (
    CONVERSIONS,
    FALLBACK_OPS,
    FALLBACK_SOURCES,
    HVS_DISTORTIONS,
    STAGE_OPS,
    fold_angle,
    severity_link,
    study_intensity,
    to_strength,
)
from mappings.hvs import DISTORTIONS
from mappings.normalize import Normalized, human_to_confidence

SETTINGS = settings(max_examples=50, deadline=None)


# ============================================================================= human_to_confidence
@pytest.mark.parametrize("k", [2, 10, 16, 100])
def test_chance_maps_to_one_over_k_and_ceiling_to_one(k):
    assert human_to_confidence(1 / 16, 1 / 16, 0.86, k) == pytest.approx(1 / k)
    assert human_to_confidence(0.86, 1 / 16, 0.86, k) == pytest.approx(1.0)
    assert human_to_confidence(0.0, 1 / 16, 0.86, k) == pytest.approx(1 / k)  # below chance: clipped
    assert human_to_confidence(0.95, 1 / 16, 0.86, k) == 1.0  # above the ceiling: clipped


def test_formula_midpoint():
    g, a0, k = 0.2, 0.98, 10
    acc = 0.5 * (g + a0)
    assert human_to_confidence(acc, g, a0, k) == pytest.approx(0.1 + 0.9 * 0.5)


@SETTINGS
@given(
    accs=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=30),
    guess=st.floats(0.0, 0.9),
    gap=st.floats(0.01, 1.0),
    k=st.integers(2, 1000),
)
def test_monotone_and_bounded(accs, guess, gap, k):
    ceiling = min(1.0, guess + gap)
    a = np.sort(np.array(accs))
    c = human_to_confidence(a, guess, ceiling, k)
    assert c.dtype == np.float64 and c.shape == a.shape
    assert np.all(np.diff(c) >= -1e-12)
    assert np.all(c >= 1 / k - 1e-12) and np.all(c <= 1 + 1e-12)


def test_types_are_preserved():
    assert isinstance(human_to_confidence(0.5, 0.0625, 0.9, 10), float)
    a32 = np.array([0.1, 0.5, 0.9], dtype=np.float32)
    out = human_to_confidence(a32, 0.0625, 0.9, 10)
    assert out.dtype == np.float32 and out.shape == (3,)
    scalar = human_to_confidence(np.float64(0.5), 0.0625, 0.9, 10)
    assert isinstance(scalar, np.float64)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        t = torch.tensor([0.1, 0.5, 0.9], dtype=dtype)
        ct = human_to_confidence(t, 0.0625, 0.9, 10)
        assert ct.dtype == dtype
        expected = human_to_confidence(t.double().numpy(), 0.0625, 0.9, 10)
        atol = 1e-2 if dtype == torch.bfloat16 else 1e-6
        np.testing.assert_allclose(ct.double().numpy(), expected, atol=atol)


@pytest.mark.parametrize(
    "args, exc, word",
    [
        ((0.5, 0.5, 0.5, 10), ValueError, "ceiling"),
        ((0.5, 0.6, 0.5, 10), ValueError, "ceiling"),
        ((0.5, 0.1, 1.1, 10), ValueError, "ceiling"),
        ((0.5, 1.0, 1.0, 10), ValueError, "guess"),
        ((0.5, -0.1, 0.9, 10), ValueError, "guess"),
        ((0.5, 0.1, 0.9, 1), ValueError, "num_classes"),
        ((0.5, 0.1, 0.9, 2.0), TypeError, "num_classes"),
        ((1.2, 0.1, 0.9, 10), ValueError, "acc"),
        ((math.nan, 0.1, 0.9, 10), ValueError, "acc"),
        ((np.array([0, 1]), 0.1, 0.9, 10), TypeError, "acc"),
        (("0.5", 0.1, 0.9, 10), TypeError, "acc"),
        ((0.5, "chance", 0.9, 10), TypeError, "guess"),
    ],
)
def test_validation(args, exc, word):
    with pytest.raises(exc, match=word):
        human_to_confidence(*args)


# ============================================================================= Normalized
PSY = Psychometric("weibull", {"alpha": 0.5, "beta": 2.0}, guess=1 / 16, lapse=0.12)


def test_normalized_maps_psychometric_to_confidence():
    m = Normalized(PSY, guess=1 / 16, ceiling=PSY(0.0), num_classes=10)
    assert m(0.0) == pytest.approx(1.0)
    assert m.is_monotone
    s = np.linspace(0, 1, 101)
    c = m(s)
    np.testing.assert_allclose(c, human_to_confidence(PSY(s), 1 / 16, PSY(0.0), 10))
    assert np.all(np.diff(c) <= 1e-12) and c.min() >= 0.1 - 1e-12
    t = torch.tensor(s, dtype=torch.float32)
    np.testing.assert_allclose(m(t).numpy(), c, atol=1e-6)
    assert m(t).dtype == torch.float32


def test_normalized_json_round_trip_and_hash():
    for inner in (PSY, Table([0.0, 0.5, 1.0], [0.9, 0.5, 0.1])):
        m = Normalized(inner, 0.0625, 0.9, 16)
        d = json.loads(json.dumps(m.to_dict()))
        assert d["type"] == "normalized" and d["mapping"]["type"] == inner.type_name
        back = from_dict(d)
        assert back == m and hash(back) == hash(m)
        np.testing.assert_array_equal(back(np.linspace(0, 1, 11)), m(np.linspace(0, 1, 11)))


def test_normalized_validation():
    with pytest.raises(TypeError, match="mapping"):
        Normalized(lambda s: s, 0.1, 0.9, 10)
    with pytest.raises(ValueError, match="ceiling"):
        Normalized(PSY, 0.5, 0.4, 10)
    with pytest.raises(ValueError, match="keys"):
        from_dict({"type": "normalized", "mapping": PSY.to_dict(), "guess": 0.1})
    assert not Normalized(Table([0.0, 0.5, 1.0], [0.5, 0.9, 0.1]), 0.1, 0.9, 10).is_monotone


@SETTINGS
@given(s=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20), k=st.integers(2, 200))
def test_normalized_range(s, k):
    m = Normalized(PSY, 1 / 16, PSY(0.0), k)
    c = m(np.array(s))
    assert np.all(c >= 1 / k - 1e-12) and np.all(c <= 1.0 + 1e-12)


# ============================================================================= conversion table
def _keys(op):
    return [op + "+", op + "-"] if op in SIGNED_OPS else [op]


@pytest.mark.parametrize("op", TA_OPS)
def test_every_ta_op_sign_has_human_data_xor_a_fallback(op):
    for key in _keys(op):
        m = -0.5 if key.endswith("-") else 0.5
        if op == "Rotate" or op.startswith("Translate"):
            m *= 20
        has_data = study_intensity(op, m, 32) is not None
        fallback = key in FALLBACK_OPS or op in FALLBACK_OPS
        assert has_data != fallback, key


def test_fallbacks_are_documented_sources():
    assert set(FALLBACK_OPS.values()) <= set(FALLBACK_SOURCES)
    for key in FALLBACK_OPS:
        op = key.rstrip("+-")
        assert op in TA_OPS and (key == op or op in SIGNED_OPS)
    assert {c.distortion for c in CONVERSIONS.values()} <= set(HVS_DISTORTIONS) == set(DISTORTIONS)


@pytest.mark.parametrize(
    "op, m, size, expected",
    [
        ("Contrast", -0.3, 32, ("contrast", 0.7)),
        ("Contrast", 0.3, 32, None),
        ("Brightness", -0.5, 32, ("contrast", 0.5)),
        ("Brightness", 0.5, 32, None),
        ("Rotate", -100.0, 32, ("rotation", 100.0)),
        ("Rotate", 270.0, 32, ("rotation", 90.0)),
        ("TranslateX", 8.7, 32, ("occlusion", 75.0)),
        ("TranslateX", -8.0, (32, 64), ("occlusion", 87.5)),
        ("TranslateY", -8.0, (32, 64), ("occlusion", 75.0)),
        ("TranslateX", 40.0, 32, ("occlusion", 0.0)),
        ("Sharpness", -0.99, 32, ("low-pass", math.sqrt(6 * 0.99 / 13) * 7)),
        ("Sharpness", 0.5, 32, None),
        ("random_erasing", 0.25, 32, ("occlusion", 75.0)),
        ("soft_crop", 0.4, 32, ("occlusion", 60.0)),
        ("noise", 0.1, 32, ("uniform-noise", math.sqrt(3) * 0.1)),
        ("gaussian_blur", 2.0, 64, ("low-pass", 7.0)),
        ("ShearX", 0.3, 32, None),
        ("Posterize", 4.0, 32, None),
        ("Identity", 0.0, 32, None),
    ],
)
def test_study_intensity_values(op, m, size, expected):
    got = study_intensity(op, m, size)
    if expected is None:
        assert got is None
    else:
        assert got[0] == expected[0] and got[1] == pytest.approx(expected[1])


def test_study_intensity_errors():
    with pytest.raises(ValueError, match="op must be one of"):
        study_intensity("Blur", 1.0, 32)
    with pytest.raises(ValueError, match="NaN"):
        study_intensity("Contrast", math.nan, 32)
    with pytest.raises(TypeError, match="image_size"):
        study_intensity("Contrast", -0.1, 32.0)
    with pytest.raises(ValueError, match="image_size"):
        study_intensity("Contrast", -0.1, (0, 32))
    with pytest.raises(ValueError, match="random_erasing"):
        study_intensity("random_erasing", 1.5, 32)


def test_fold_angle():
    assert [fold_angle(a) for a in (0, 45, -90, 180, 270, 350, 720)] == [0, 45, 90, 180, 90, 10, 0]


# ============================================================================= strength axes
@pytest.mark.parametrize(
    "distortion, value, x",
    [
        ("contrast", 1.0, 0.0), ("contrast", 0.05, 0.95), ("uniform-noise", 0.35, 0.35),
        ("low-pass", 7.0, 7.0), ("high-pass", math.inf, 0.0), ("high-pass", 0.5, 2.0),
        ("phase-scrambling", 90.0, 90.0), ("rotation", 270.0, 90.0), ("eidolonII", 8.0, 8.0),
        ("occlusion", 100.0, 0.0), ("occlusion", 2.5, 0.975), ("colour", "greyscale", 1.0),
        ("false-colour", "true-colour", 0.0), ("power-equalisation", "power-equalised", 1.0),
    ],
)
def test_to_strength(distortion, value, x):
    assert to_strength(distortion, value) == pytest.approx(x)


@pytest.mark.parametrize(
    "distortion, value", [("contrast", 1.5), ("contrast", -0.1), ("occlusion", 120.0), ("colour", "sepia"),
                          ("low-pass", math.nan)],
)
def test_to_strength_rejects_out_of_range(distortion, value):
    with pytest.raises(ValueError):
        to_strength(distortion, value)
    with pytest.raises(ValueError, match="distortion must be one of"):
        to_strength("blur", 1.0)


@pytest.mark.parametrize("op", ["Contrast", "Brightness", "Rotate", "TranslateX", "TranslateY", "Sharpness"])
@pytest.mark.parametrize("hw", [(32, 32), (64, 48)])
def test_severity_link_agrees_with_both_tables(op, hw):
    """strength(study_intensity(op, m)) == scale * severity(op, m) ** power for TA ops."""
    link = severity_link(op, hw)
    top = {"Rotate": 135.0, "TranslateX": 32.0, "TranslateY": 32.0}.get(op, 0.99)
    for frac in (0.0, 0.1, 0.37, 0.8, 1.0):
        m = -frac * top
        s = severity_scalar(op, m, *hw)
        distortion, value = study_intensity(op, m, hw)
        assert distortion == link.distortion
        # severity_scalar is float32: compare with a relative tolerance
        assert to_strength(distortion, value) == pytest.approx(link.strength(s), rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("op, m", [("random_erasing", 0.3), ("soft_crop", 0.45), ("noise", 0.2)])
def test_severity_link_for_stages(op, m):
    link = severity_link(op, 32)
    distortion, value = study_intensity(op, m, 32)
    assert to_strength(distortion, value) == pytest.approx(link.strength(m))  # stage severity = magnitude
    assert severity_link("ShearX", 32) is None and severity_link("gaussian_blur", 32) is None
    assert set(STAGE_OPS) == {"random_erasing", "soft_crop", "noise", "gaussian_blur"}
