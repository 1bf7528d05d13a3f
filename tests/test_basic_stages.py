"""Hard batched flip and padded crop equal torchvision's per-sample ops for the same parameters."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.transforms.v2 import functional as F

from harness.augment.basic import BatchRandomCrop, BatchRandomHorizontalFlip


def _images(n=8, h=12, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 4), st.integers(0, 2**31 - 1))
def test_crop_matches_torchvision_pad_then_crop(pad, seed):
    x = _images(6, seed=seed % 1000)
    g = torch.Generator().manual_seed(seed)
    top = torch.randint(0, 2 * pad + 1, (6,), generator=g)
    left = torch.randint(0, 2 * pad + 1, (6,), generator=g)
    out, info = BatchRandomCrop(pad).apply(x, top, left)
    for k in range(6):
        ref = F.crop(F.pad(x[k], [pad, pad, pad, pad], fill=0), int(top[k]), int(left[k]), 12, 10)
        assert torch.equal(out[k], ref)
    assert torch.all(info.confidences == 1)


def test_crop_offsets_cover_range_and_are_seeded():
    x = _images(400, 8, 8)
    crop = BatchRandomCrop(2)
    a, ia = crop(x, generator=torch.Generator().manual_seed(1))
    b, ib = crop(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert set(ia.magnitudes.tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}


def test_flip_rate_and_content():
    x = _images(2000, 4, 4)
    out, info = BatchRandomHorizontalFlip(0.5)(x, generator=torch.Generator().manual_seed(0))
    flipped = info.op_ids.bool()
    assert 0.45 < flipped.float().mean().item() < 0.55
    assert torch.equal(out[flipped], x[flipped].flip(-1))
    assert torch.equal(out[~flipped], x[~flipped])


def test_bad_parameters():
    with pytest.raises(ValueError, match="p must"):
        BatchRandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="padding"):
        BatchRandomCrop(-1)
