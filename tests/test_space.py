"""The TrivialAugmentWide op spec matches torchvision and defines severities in [0, 1]."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.transforms.v2 import TrivialAugmentWide

from harness.augment.space import (
    SIGNED_OPS,
    TA_OPS,
    magnitude_bins,
    op_id,
    severity_from_magnitude,
    severity_scalar,
)


def test_op_order_and_bins_match_torchvision():
    space = TrivialAugmentWide._AUGMENTATION_SPACE
    assert TA_OPS == tuple(space.keys())
    for name, (fn, signed) in space.items():
        assert (name in SIGNED_OPS) == signed, name
        ref = fn(31, 32, 32)
        ours = magnitude_bins(name, 31)
        if ref is None:
            assert ours is None
        else:
            torch.testing.assert_close(ours, ref.to(torch.float64), rtol=0, atol=0)


@pytest.mark.parametrize(
    "op, magnitude, size, expected",
    [
        ("Identity", 0.0, 32, 0.0),
        ("ShearX", -0.99, 32, 0.99),
        ("TranslateX", 10.6667, 32, 10 / 32),  # the integer shift actually applied (§7.7)
        ("TranslateY", -32.0, 32, 1.0),
        ("TranslateX", 32.0, 64, 0.5),  # real image size, not a fixed 32
        ("Rotate", -135.0, 32, 1.0),
        ("Rotate", 45.0, 32, 1 / 3),
        ("Brightness", 0.66, 32, 0.66),
        ("Posterize", 8.0, 32, 0.0),
        ("Posterize", 2.0, 32, 0.75),
        ("Solarize", 1.0, 32, 0.0),
        ("Solarize", 0.0, 32, 1.0),
        ("Equalize", 0.0, 32, 0.0),
    ],
)
def test_severity_worked_values(op, magnitude, size, expected):
    assert severity_scalar(op, magnitude, size, size) == pytest.approx(expected, abs=1e-6)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, len(TA_OPS) - 1), st.integers(0, 30), st.booleans(), st.sampled_from([8, 32, 64]))
def test_every_bin_gives_severity_in_unit_interval_and_symmetric_in_sign(op_index, bin_index, negate, size):
    op = TA_OPS[op_index]
    mags = magnitude_bins(op)
    m = 0.0 if mags is None else float(mags[bin_index])
    if negate and op in SIGNED_OPS:
        m = -m
    s = severity_scalar(op, m, size, size)
    assert 0.0 <= s <= 1.0
    if op in SIGNED_OPS:
        assert s == severity_scalar(op, -m, size, size)


def test_severity_is_non_decreasing_over_bins():
    for op in TA_OPS:
        mags = magnitude_bins(op)
        if mags is None:
            continue
        ids = torch.full((31,), op_id(op))
        sev = severity_from_magnitude(ids, mags, 32, 32)
        assert torch.all(sev[1:] >= sev[:-1]), op
        assert sev[0] == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="op must be one of"):
        op_id("Invert")
    with pytest.raises(ValueError, match="num_bins"):
        magnitude_bins("Rotate", 1)
    with pytest.raises(ValueError, match="op_ids"):
        severity_from_magnitude(torch.tensor([14]), torch.tensor([0.0]), 32, 32)
    with pytest.raises(ValueError, match="equal shape"):
        severity_from_magnitude(torch.tensor([1, 2]), torch.tensor([0.0]), 32, 32)
