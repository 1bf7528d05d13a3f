"""Tests for the soft random crop (harness/augment/crop.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from harness.augment.crop import (
    BatchSoftRandomCrop,
    SoftRandomCrop,
    background_values,
    soft_crop_batch,
    soft_crop_image,
    visibility,
)
from mappings import Polynomial, crop_mapping
from conftest import DEVICES, DTYPES, K, gen, make_images



def reference_fill(image: torch.Tensor, background) -> list:
    """Background per channel computed independently of the module."""
    if background == "zero":
        return [0] * image.shape[0]
    if background == "mean":
        if image.dtype == torch.uint8:
            return [int(v) for v in image.double().mean(dim=(1, 2)).round().tolist()]
        return image.double().mean(dim=(1, 2)).tolist()  # documented: float64 mean, float32 fill
    return list(background) if len(background) > 1 else list(background) * image.shape[0]


def reference_crop(image: torch.Tensor, tx: int, ty: int, background) -> torch.Tensor:
    """3H x 3W canvas via F.pad, then F.crop at (H + ty, W + tx)."""
    _, h, w = image.shape
    canvas = F.pad(image, [w, h, w, h], fill=reference_fill(image, background))
    return F.crop(canvas, top=h + ty, left=w + tx, height=h, width=w)


# ------------------------------------------------------------------------------------------------
# batched kernel == per-sample torchvision functional kernel
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("background", ["zero", "mean", (0.25, 0.5, 1.0), (1.0,)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_apply_equals_per_sample_pad_crop(dtype, background, device):
    if isinstance(background, tuple) and dtype == torch.uint8:
        background = tuple(round(v * 255) for v in background)
    n = 20
    images = make_images(n, dtype, 16, 24, device=device)
    original = images.clone()
    tf = BatchSoftRandomCrop(K, sigma_frac=0.4, background=background)
    params = tf.sample_params(n, 16, 24, device=device, generator=gen(1))
    out, info = tf.apply(images, **params)
    assert torch.equal(images, original)
    assert out.dtype == dtype and out.shape == images.shape and out.device == images.device
    tx, ty = params["tx"].tolist(), params["ty"].tolist()
    assert len(set(tx)) > 3 and len(set(ty)) > 3
    for k in range(n):
        expected = reference_crop(images[k], tx[k], ty[k], background)
        assert torch.equal(out[k], expected), k
        assert torch.equal(soft_crop_image(images[k], tx[k], ty[k], background), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("background", ["zero", "mean"])
def test_per_sample_forward_equals_batched_apply(dtype, background):
    tf = SoftRandomCrop(K, sigma_px=5.0, background=background)
    btf = BatchSoftRandomCrop(K, sigma_px=5.0, background=background)
    for seed, img in enumerate(make_images(12, dtype, seed=2)):
        torch.manual_seed(seed)
        params = tf.make_params(img)
        torch.manual_seed(seed)
        out, info = tf(img)
        bout, binfo = btf.apply(img[None], torch.tensor([params["tx"]]), torch.tensor([params["ty"]]))
        assert torch.equal(bout[0], out)
        assert info.op == "soft_crop"
        assert info.severity == pytest.approx(float(binfo.severities[0]), abs=1e-6)
        assert info.magnitude == pytest.approx(float(binfo.magnitudes[0]), abs=1e-6)
        assert info.confidence == pytest.approx(float(binfo.confidences[0]), abs=1e-6)


def test_sign_convention_content_moves_by_minus_offset():
    img = torch.zeros(1, 1, 16, 16)
    img[0, 0, 7, 9] = 1.0
    for tx, ty in [(3, 0), (0, 3), (-2, 5), (4, -6), (0, 0)]:
        out = soft_crop_batch(img, torch.tensor([tx]), torch.tensor([ty]))
        assert out.sum() == 1.0
        assert out[0, 0, 7 - ty, 9 - tx] == 1.0


# ------------------------------------------------------------------------------------------------
# visibility / confidence
# ------------------------------------------------------------------------------------------------
@settings(deadline=None, max_examples=60)
@given(data=st.data(), h=st.integers(2, 20), w=st.integers(2, 20), k=st.integers(2, 1000))
def test_visibility_matches_pixel_count_and_confidence_formula(data, h, w, k):
    n = 4
    tx = data.draw(st.lists(st.integers(-w, w), min_size=n, max_size=n))
    ty = data.draw(st.lists(st.integers(-h, h), min_size=n, max_size=n))
    ones = torch.ones(n, 3, h, w)
    out, info = BatchSoftRandomCrop(k, sigma_px=1.0).apply(ones, torch.tensor(tx), torch.tensor(ty))
    for i in range(n):
        count = int(out[i, 0].sum())  # non-background pixels
        v = count / (h * w)
        assert count == (w - abs(tx[i])) * (h - abs(ty[i]))
        assert v == pytest.approx(visibility(tx[i], ty[i], h, w))
        assert float(info.severities[i]) == pytest.approx(1 - v, abs=1e-6)
        assert float(info.magnitudes[i]) == pytest.approx(1 - v, abs=1e-6)
        assert float(info.confidences[i]) == pytest.approx(1 - (1 - 1 / k) * (1 - v) ** 2, abs=1e-6)
    assert torch.equal(info.op_ids, torch.ones(n, dtype=torch.int64)) and info.stage == "soft_crop"


@settings(deadline=None, max_examples=40)
@given(
    tx=st.integers(-16, 16),
    ty=st.integers(-16, 16),
    p_min=st.floats(0, 1),
    power=st.floats(0.25, 4),
    k=st.integers(2, 50),
)
def test_confidence_custom_mapping_floored_at_chance(tx, ty, p_min, power, k):
    _, info = BatchSoftRandomCrop(k, sigma_px=1.0, mapping=Polynomial(p_min, power)).apply(
        torch.zeros(1, 1, 16, 16), torch.tensor([tx]), torch.tensor([ty])
    )
    sev = 1 - (16 - abs(tx)) * (16 - abs(ty)) / 256
    assert float(info.confidences[0]) == pytest.approx(max(1 - (1 - p_min) * sev**power, 1 / k), abs=1e-5)


@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 2**31 - 1), sigma_frac=st.floats(0.01, 5.0), k=st.integers(2, 200))
def test_severity_and_confidence_ranges(seed, sigma_frac, k):
    tf = BatchSoftRandomCrop(k, sigma_frac=sigma_frac)
    _, info = tf(make_images(16, torch.float32), generator=gen(seed))
    assert ((info.severities >= 0) & (info.severities <= 1)).all()
    assert ((info.confidences >= 1 / k - 1e-7) & (info.confidences <= 1)).all()


def test_hard_gives_ones_and_default_mapping():
    images = make_images(16, torch.uint8)
    out_s, info_s = BatchSoftRandomCrop(K, sigma_frac=0.3)(images, generator=gen(1))
    out_h, info_h = BatchSoftRandomCrop(K, sigma_frac=0.3, hard=True)(images, generator=gen(1))
    assert torch.equal(out_s, out_h) and torch.equal(info_h.severities, info_s.severities)
    assert torch.equal(info_h.confidences, torch.ones(16)) and (info_s.confidences < 1).any()
    torch.manual_seed(1)
    _, one = SoftRandomCrop(K, sigma_px=50.0, hard=True)(images[0])
    assert one.confidence == 1.0 and one.severity > 0
    assert BatchSoftRandomCrop(K, sigma_px=1.0).mapping == crop_mapping(K)
    assert SoftRandomCrop(K, sigma_px=1.0).mapping == crop_mapping(K)


# ------------------------------------------------------------------------------------------------
# offset distribution
# ------------------------------------------------------------------------------------------------
def test_offsets_bounded_by_side_per_axis():
    tf = BatchSoftRandomCrop(K, sigma_frac=1.5)  # ~50% of draws rejected
    p = tf.sample_params(3000, 12, 20, generator=gen(0))
    assert (p["tx"].abs() <= 20).all() and (p["ty"].abs() <= 12).all()
    assert p["tx"].abs().max() > 12  # tx uses W = 20, not H
    assert (p["tx"].abs() == 20).any() and (p["ty"].abs() == 12).any()  # |t| == D is accepted
    torch.manual_seed(0)
    single = SoftRandomCrop(K, sigma_frac=1.5)
    for _ in range(200):
        q = single.make_params(torch.zeros(3, 12, 20))
        assert abs(q["tx"]) <= 20 and abs(q["ty"]) <= 12


def test_all_rejected_falls_back_to_zero():
    p = BatchSoftRandomCrop(K, sigma_px=1e9).sample_params(50, 16, 16, generator=gen(0))
    assert (p["tx"] == 0).all() and (p["ty"] == 0).all()
    torch.manual_seed(0)
    assert SoftRandomCrop(K, sigma_px=1e9).make_params(torch.zeros(3, 16, 16)) == {"tx": 0, "ty": 0}


def test_offsets_truncate_toward_zero():
    """P(t == 0) = P(|z| < 1/sigma) for int() truncation (floor would give P(0 <= z < 1/sigma))."""
    sigma = 2.0
    p0 = math.erf(1 / sigma / math.sqrt(2))
    n = 4000
    params = BatchSoftRandomCrop(K, sigma_px=sigma).sample_params(n, 32, 32, generator=gen(3))
    assert binomtest(int((params["tx"] == 0).sum()), n, p0).pvalue > 1e-3
    assert binomtest(int((params["tx"] > 0).sum()), n, (1 - p0) / 2).pvalue > 1e-3
    torch.manual_seed(4)
    tf = SoftRandomCrop(K, sigma_px=sigma)
    zeros = sum(tf.make_params(torch.zeros(1, 32, 32))["tx"] == 0 for _ in range(1000))
    assert binomtest(zeros, 1000, p0).pvalue > 1e-3


def _truncated_normal_std(sigma: float, limit: int) -> float:
    """Std of int(N(0, sigma^2)) conditioned on |t| <= limit (the rejection step), from the normal CDF."""
    from scipy.stats import norm

    ks = range(-limit, limit + 1)
    # int() truncation: t = k > 0 for z in [k, k + 1), t = k < 0 for z in (k - 1, k], t = 0 for |z| < 1
    probs = [
        norm.cdf(1 / sigma) - norm.cdf(-1 / sigma)
        if k == 0
        else norm.cdf((abs(k) + 1) / sigma) - norm.cdf(abs(k) / sigma)
        for k in ks
    ]
    total = sum(probs)
    return math.sqrt(sum(k * k * q for k, q in zip(ks, probs)) / total)


def test_sigma_frac_scales_with_each_side():
    """sigma_frac uses W for tx and H for ty; sigma_px is the same on both axes."""
    p = BatchSoftRandomCrop(K, sigma_frac=0.1).sample_params(4000, 16, 64, generator=gen(2))
    assert float(p["tx"].double().std()) == pytest.approx(_truncated_normal_std(6.4, 64), rel=0.05)
    assert float(p["ty"].double().std()) == pytest.approx(_truncated_normal_std(1.6, 16), rel=0.05)
    px = BatchSoftRandomCrop(K, sigma_px=6.0).sample_params(4000, 16, 64, generator=gen(2))
    assert float(px["tx"].double().std()) == pytest.approx(_truncated_normal_std(6.0, 64), rel=0.05)
    assert float(px["ty"].double().std()) == pytest.approx(_truncated_normal_std(6.0, 16), rel=0.05)


# ------------------------------------------------------------------------------------------------
# background
# ------------------------------------------------------------------------------------------------
def test_mean_background_uint8_and_float():
    img = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    img[0, 0] = 10
    img[0, 1, :2] = 255  # mean 127.5 -> rounds (half to even) to 128
    img[0, 2, 0, 0] = 7  # mean 0.4375 -> 0
    tf = BatchSoftRandomCrop(K, sigma_px=1.0, background="mean")
    out, _ = tf.apply(img, torch.tensor([4]), torch.tensor([0]))
    assert out[0, :, 0, 0].tolist() == [10, 128, 0]
    assert (out[0] == out[0, :, :1, :1]).all()  # fully shifted out: background everywhere
    torch.manual_seed(0)
    xf = torch.rand(3, 8, 8)
    outf = soft_crop_image(xf, 0, -8, "mean")
    assert torch.allclose(outf, xf.mean(dim=(1, 2))[:, None, None].expand(3, 8, 8))


def test_zero_and_tuple_backgrounds():
    x = torch.full((2, 3, 8, 8), 0.5)
    out = soft_crop_batch(x, torch.tensor([8, -8]), torch.tensor([0, 0]), background=(0.1, 0.2, 0.3))
    assert torch.allclose(out[:, :, 0, 0], torch.tensor([[0.1, 0.2, 0.3]] * 2))
    assert (soft_crop_batch(x, torch.tensor([8, 8]), torch.tensor([8, 0])) == 0).all()
    u = torch.full((1, 1, 8, 8), 9, dtype=torch.uint8)
    assert (soft_crop_batch(u, torch.tensor([8]), torch.tensor([0]), background=(200,)) == 200).all()


def test_background_values_validation():
    u = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"background for uint8 images must be integers in \[0, 255\]"):
        background_values(u, (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"background for float images must be in \[0, 1\]"):
        background_values(u.float(), (2.0,))
    with pytest.raises(ValueError, match=r"background must have 1 or C=3 per-channel values"):
        background_values(u, (1, 2))


# ------------------------------------------------------------------------------------------------
# reproducibility
# ------------------------------------------------------------------------------------------------
def test_same_seed_same_output_different_seed_different():
    tf = BatchSoftRandomCrop(K, sigma_frac=0.3, background="mean")
    images = make_images(16, torch.float32)
    a, ia = tf(images, generator=gen(5))
    b, ib = tf(images, generator=gen(5))
    c, ic = tf(images, generator=gen(6))
    assert torch.equal(a, b) and torch.equal(ia.confidences, ib.confidences)
    assert not torch.equal(a, c) and not torch.equal(ia.severities, ic.severities)


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(), ValueError, r"exactly one of sigma_px .* and sigma_frac .*sigma_px=None, sigma_frac=None"),
        (
            dict(sigma_px=3.0, sigma_frac=0.3),
            ValueError,
            r"exactly one of sigma_px.*sigma_px=3\.0, sigma_frac=0\.3",
        ),
        (dict(sigma_px=0.0), ValueError, r"sigma_px must be a finite number > 0.*sigma_px=0\.0"),
        (dict(sigma_frac=-0.3), ValueError, r"sigma_frac must be a finite number > 0.*-0\.3"),
        (dict(sigma_px=3.0, background="random"), ValueError, r"background must be one of .*'random'"),
        (dict(sigma_px=3.0, background=(-1.0,)), ValueError, r"background must be .*\(-1\.0,\)"),
        (dict(sigma_px=3.0, background=()), ValueError, r"background must be"),
        (dict(sigma_px=3.0, hard=None), TypeError, r"hard must be a bool"),
        (dict(sigma_px=3.0, mapping=3), TypeError, r"mapping must be callable"),
    ],
)
@pytest.mark.parametrize("cls", [SoftRandomCrop, BatchSoftRandomCrop])
def test_bad_parameters(cls, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cls(K, **kwargs)


@pytest.mark.parametrize("cls", [SoftRandomCrop, BatchSoftRandomCrop])
def test_bad_num_classes(cls):
    with pytest.raises(ValueError, match="num_classes"):
        cls(1, sigma_px=1.0)


def test_bad_images_and_apply_arguments():
    with pytest.raises(TypeError, match="image must be a uint8 or floating"):
        SoftRandomCrop(K, sigma_px=1.0)(torch.zeros(3, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"image must have shape \[C, H, W\]"):
        SoftRandomCrop(K, sigma_px=1.0)(torch.zeros(8, 8))
    btf = BatchSoftRandomCrop(K, sigma_px=1.0)
    with pytest.raises(TypeError, match="images must be a uint8 or floating"):
        btf(torch.zeros(2, 3, 8, 8, dtype=torch.bool))
    images = torch.zeros(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"tx must satisfy \|tx\| <= 8"):
        btf.apply(images, torch.tensor([9, 0]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"ty must be an int64 tensor of shape \[2\]"):
        btf.apply(images, torch.tensor([0, 0]), torch.tensor([0.0, 0.0]))
