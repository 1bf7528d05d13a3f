"""Tests for soft Random Erasing (harness/augment/erasing.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from torchvision.transforms import v2

from harness.augment._common import AugmentInfo
from harness.augment.erasing import (
    BatchSoftRandomErasing,
    SoftRandomErasing,
    draw_fill,
    erase_batch,
    erase_image,
)
from mappings import Polynomial, erasing_mapping
from conftest import DEVICES, DTYPES, K, gen, make_images



def rounding_tolerance(hw: int, scale: tuple[float, float], ratio: tuple[float, float]) -> float:
    """Max deviation of h*w/(H*W) from the drawn area fraction caused by rounding h and w."""
    a_max = scale[1] * hw
    worst = max(math.sqrt(r) + 1 / math.sqrt(r) for r in ratio)
    return (0.5 * math.sqrt(a_max) * worst + 0.25) / hw


# ------------------------------------------------------------------------------------------------
# batched kernel == per-sample torchvision functional kernel
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("value", ["zero", "uniform", "normal"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_apply_equals_per_sample_torchvision_erase(dtype, value, device):
    n = 24
    images = make_images(n, dtype, device=device)
    original = images.clone()
    tf = BatchSoftRandomErasing(K, p=0.6, scale=(0.05, 0.5), value=value)
    params = tf.sample_params(n, 16, 16, device=device, generator=gen(1))
    # "normal" on uint8: the stage works on (and returns) float32 in [0, 1] units, the reference's unclamped fill
    out_dtype = torch.float32 if (value == "normal" and dtype == torch.uint8) else dtype
    fill = draw_fill(value, images.shape, out_dtype, device=device, generator=gen(2))
    out, info = tf.apply(images, **params, fill=fill)

    assert torch.equal(images, original)  # not modified in place
    assert out.dtype == out_dtype and out.shape == images.shape and out.device == images.device
    if out_dtype != dtype:
        images = images.float() / 255
    boxes = params["boxes"].cpu()
    assert 0 < int(info.op_ids.sum()) < n  # both erased and untouched samples are covered
    for k in range(n):
        i, j, h, w = boxes[k].tolist()
        if h * w == 0:
            expected = images[k]
        else:
            expected = F.erase(images[k], i, j, h, w, v=fill[k][:, i : i + h, j : j + w])
        assert torch.equal(out[k], expected), k
        # module-level per-sample kernel is the same thing
        if h * w:
            assert torch.equal(erase_image(images[k], i, j, h, w, fill[k][:, i : i + h, j : j + w]), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_erase_batch_zero_fill_default(dtype):
    images = make_images(4, dtype)
    boxes = torch.tensor([[0, 0, 3, 5], [2, 3, 0, 0], [15, 15, 1, 1], [0, 0, 16, 16]])
    out = erase_batch(images, boxes)
    assert (out[0, :, :3, :5] == 0).all() and torch.equal(out[0, :, 3:], images[0, :, 3:])
    assert torch.equal(out[0, :, :3, 5:], images[0, :, :3, 5:])
    assert torch.equal(out[1], images[1])
    assert (out[2, :, 15, 15] == 0).all() and torch.equal(out[2, :, :15], images[2, :, :15])
    assert (out[3] == 0).all()


@pytest.mark.parametrize(
    "value,tv_value,dtype",
    # uint8 "normal": the reference erases the [0, 1] float image (ToTensor) with unclamped N(0, 1); ours turns the
    # uint8 image into exactly that float image first, so it is compared with torchvision on img / 255
    [("zero", 0.0, torch.float32), ("zero", 0.0, torch.uint8), ("normal", "random", torch.float32),
     ("normal", "random", torch.uint8)],
)
def test_per_sample_reproduces_torchvision_random_erasing(value, tv_value, dtype):
    """Same seed -> same draws and pixels as torchvision v2 RandomErasing."""
    images = make_images(60, dtype, seed=3)
    ours = SoftRandomErasing(K, p=0.7, scale=(0.02, 0.4), ratio=(0.3, 3.3), value=value)
    theirs = v2.RandomErasing(p=0.7, scale=(0.02, 0.4), ratio=(0.3, 3.3), value=tv_value)
    changed = 0
    for seed, img in enumerate(images):
        torch.manual_seed(seed)
        a, info = ours(img)
        torch.manual_seed(seed)
        b = theirs(img.float() / 255 if (value == "normal" and dtype == torch.uint8) else img)
        assert torch.equal(a, b), seed
        changed += info.op != "none"
    assert 20 < changed < 60


@pytest.mark.parametrize("value", ["zero", "uniform", "normal"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_per_sample_forward_equals_batched_apply(dtype, value):
    """One semantics: a per-sample draw replayed through the batched kernel gives the same pixels/info."""
    tf = SoftRandomErasing(K, p=0.8, scale=(0.05, 0.6), value=value)
    btf = BatchSoftRandomErasing(K, p=0.8, scale=(0.05, 0.6), value=value)
    for seed, img in enumerate(make_images(20, dtype, seed=5)):
        torch.manual_seed(seed)
        params = tf.make_params(img)
        torch.manual_seed(seed)
        out, info = tf(img)
        i, j, h, w = params["top"], params["left"], params["height"], params["width"]
        fill = torch.zeros_like(out)[None]  # in the output's dtype (float32 for uint8 "normal")
        if h * w:
            fill[0, :, i : i + h, j : j + w] = params["fill"]
        bout, binfo = btf.apply(img[None], torch.tensor([[i, j, h, w]]), fill=fill)
        assert torch.equal(bout[0], out)
        assert info.magnitude == pytest.approx(float(binfo.magnitudes[0]))
        assert info.severity == pytest.approx(float(binfo.severities[0]))
        assert info.confidence == pytest.approx(float(binfo.confidences[0]), abs=1e-6)
        assert (info.op != "none") == bool(binfo.op_ids[0])


# ------------------------------------------------------------------------------------------------
# confidence / provenance
# ------------------------------------------------------------------------------------------------
box_strategy = st.integers(0, 16).flatmap(
    lambda h: st.integers(0, 16).flatmap(
        lambda w: st.tuples(st.integers(0, 16 - h), st.integers(0, 16 - w), st.just(h), st.just(w))
    )
)


@settings(deadline=None, max_examples=60)
@given(boxes=st.lists(box_strategy, min_size=1, max_size=6), k=st.integers(2, 1000))
def test_confidence_formula_default_mapping(boxes, k):
    tf = BatchSoftRandomErasing(k)
    images = torch.zeros(len(boxes), 3, 16, 16)
    _, info = tf.apply(images, torch.tensor(boxes, dtype=torch.int64))
    for n, (_, _, h, w) in enumerate(boxes):
        a = h * w / 256
        expected = 1.0 - (1.0 - 1.0 / k) * a if a > 0 else 1.0
        assert float(info.confidences[n]) == pytest.approx(expected, abs=1e-6)
        assert float(info.severities[n]) == pytest.approx(a, abs=1e-7)
        assert float(info.magnitudes[n]) == pytest.approx(a, abs=1e-7)
        assert int(info.op_ids[n]) == int(a > 0)
    assert info.stage == "random_erasing"
    assert info.op_ids.dtype == torch.int64 and info.confidences.dtype == torch.float32


@settings(deadline=None, max_examples=40)
@given(
    box=box_strategy,
    p_min=st.floats(0.0, 1.0),
    power=st.floats(0.25, 4.0),
    k=st.integers(2, 100),
)
def test_confidence_custom_polynomial_floored_at_chance(box, p_min, power, k):
    mapping = Polynomial(p_min, power)
    tf = BatchSoftRandomErasing(k, mapping=mapping)
    _, info = tf.apply(torch.zeros(1, 1, 16, 16), torch.tensor([box]))
    a = box[2] * box[3] / 256
    expected = max(1.0 - (1.0 - p_min) * a**power, 1.0 / k) if a > 0 else 1.0
    assert float(info.confidences[0]) == pytest.approx(expected, abs=1e-5)


@settings(deadline=None, max_examples=25)
@given(
    seed=st.integers(0, 2**31 - 1),
    p=st.floats(0.0, 1.0),
    s_min=st.floats(0.01, 1.0),
    s_span=st.floats(0.0, 1.0),
    r_min=st.floats(0.1, 5.0),
    r_span=st.floats(1.0, 5.0),
    k=st.integers(2, 200),
)
def test_severity_and_confidence_ranges(seed, p, s_min, s_span, r_min, r_span, k):
    scale = (s_min, s_min + (1.0 - s_min) * s_span)
    ratio = (r_min, r_min * r_span)
    tf = BatchSoftRandomErasing(k, p=p, scale=scale, ratio=ratio, value="uniform")
    out, info = tf(make_images(32, torch.uint8), generator=gen(seed))
    assert ((info.severities >= 0) & (info.severities <= 1)).all()
    assert ((info.confidences >= 1.0 / k - 1e-7) & (info.confidences <= 1)).all()
    assert torch.equal(info.confidences == 1.0, info.op_ids == 0)  # a > 0 always gives c < 1 with K >= 2


def test_hard_gives_ones_but_keeps_provenance():
    images = make_images(64, torch.float32)
    soft = BatchSoftRandomErasing(K, p=1.0)
    hard = BatchSoftRandomErasing(K, p=1.0, hard=True)
    out_s, info_s = soft(images, generator=gen(4))
    out_h, info_h = hard(images, generator=gen(4))
    assert torch.equal(out_s, out_h)
    assert torch.equal(info_h.confidences, torch.ones(64))
    assert torch.equal(info_h.severities, info_s.severities) and (info_h.severities > 0).all()
    assert (info_s.confidences < 1).all()
    torch.manual_seed(0)
    _, one = SoftRandomErasing(K, p=1.0, hard=True)(images[0])
    assert one.confidence == 1.0 and one.severity > 0 and one.op == "random_erasing"


def test_default_mapping_is_erasing_mapping():
    assert BatchSoftRandomErasing(7).mapping == erasing_mapping(7)
    assert SoftRandomErasing(7).mapping == erasing_mapping(7)


# ------------------------------------------------------------------------------------------------
# sampling distribution
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "scale,ratio", [((0.02, 0.33), (0.3, 3.3)), ((0.2, 0.4), (0.5, 2.0)), ((0.6, 0.6), (1.0, 1.0))]
)
def test_area_fraction_within_scale_whenever_fired(scale, ratio):
    size = 32
    tol = rounding_tolerance(size * size, scale, ratio)
    tf = BatchSoftRandomErasing(K, p=1.0, scale=scale, ratio=ratio)
    for seed in range(5):
        boxes = tf.sample_params(2000, size, size, generator=gen(seed))["boxes"]
        h, w = boxes[:, 2], boxes[:, 3]
        fired = h * w > 0
        assert fired.float().mean() > 0.95
        a = (h * w)[fired].double() / (size * size)
        assert (a >= scale[0] - tol).all() and (a <= scale[1] + tol).all()
        assert ((h < size) & (w < size)).all()
        assert (boxes[:, 0] + h <= size).all() and (boxes[:, 1] + w <= size).all() and (boxes >= 0).all()
    sample = SoftRandomErasing(K, p=1.0, scale=scale, ratio=ratio)
    torch.manual_seed(123)
    for img in make_images(200, torch.uint8, h=size):
        _, info = sample(img)
        if info.op != "none":
            assert scale[0] - tol <= info.severity <= scale[1] + tol


def test_area_fraction_spread_covers_scale_range():
    """Not just a point mass: the drawn areas cover [s_min, s_max] roughly uniformly."""
    tf = BatchSoftRandomErasing(K, p=1.0, scale=(0.1, 0.5), ratio=(1.0, 1.0))
    boxes = tf.sample_params(4000, 32, 32, generator=gen(0))["boxes"]
    a = (boxes[:, 2] * boxes[:, 3]).double() / 1024
    assert a.min() < 0.12 and a.max() > 0.47
    assert abs(float(a.mean()) - 0.3) < 0.01


def test_positions_are_uniform_over_valid_range():
    tf = BatchSoftRandomErasing(K, p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0))  # 8x8 box on 16x16
    boxes = tf.sample_params(9000, 16, 16, generator=gen(0))["boxes"]
    assert (boxes[:, 2] == 8).all() and (boxes[:, 3] == 8).all()
    counts = torch.bincount(boxes[:, 0], minlength=9)
    assert counts.shape[0] == 9 and (counts > 800).all()  # all 9 tops 0..8 reached, ~1000 each


def test_firing_rate_matches_p_batched():
    n, p = 4000, 0.3
    tf = BatchSoftRandomErasing(K, p=p)
    boxes = tf.sample_params(n, 32, 32, generator=gen(11))["boxes"]
    fired = int(((boxes[:, 2] * boxes[:, 3]) > 0).sum())
    assert binomtest(fired, n, p).pvalue > 1e-3


def test_firing_rate_matches_p_per_sample():
    n, p = 1000, 0.6
    tf = SoftRandomErasing(K, p=p)
    img = make_images(1, torch.uint8, h=32)[0]
    torch.manual_seed(7)
    fired = sum(tf(img)[1].op != "none" for _ in range(n))
    assert binomtest(fired, n, p).pvalue > 1e-3


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_p_extremes(p):
    tf = BatchSoftRandomErasing(K, p=p)
    boxes = tf.sample_params(500, 32, 32, generator=gen(0))["boxes"]
    fired = (boxes[:, 2] * boxes[:, 3]) > 0
    assert bool(fired.all()) if p == 1.0 else not bool(fired.any())


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_box_fits_gives_unchanged_image_and_full_confidence(dtype):
    kwargs = dict(p=1.0, scale=(0.99, 1.0), ratio=(4.0, 5.0))  # h ~ 2*16 >= H on every attempt
    images = make_images(8, dtype)
    out, info = BatchSoftRandomErasing(K, **kwargs)(images, generator=gen(0))
    assert torch.equal(out, images)
    assert torch.equal(info.confidences, torch.ones(8))
    assert torch.equal(info.severities, torch.zeros(8))
    assert torch.equal(info.op_ids, torch.zeros(8, dtype=torch.int64))
    for seed in range(5):
        torch.manual_seed(seed)
        img_out, one = SoftRandomErasing(K, **kwargs)(images[0])
        assert torch.equal(img_out, images[0])
        assert one == AugmentInfo("none", 0.0, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------
# fill modes
# ------------------------------------------------------------------------------------------------
def _erased_values(value: str, dtype: torch.dtype) -> torch.Tensor:
    tf = BatchSoftRandomErasing(K, p=1.0, scale=(0.3, 0.3), ratio=(1.0, 1.0), value=value)
    images = torch.full((16, 3, 32, 32), 128 if dtype == torch.uint8 else 0.5, dtype=dtype)
    out, _ = tf(images.to(dtype), generator=gen(3))
    boxes = tf.sample_params(16, 32, 32, generator=gen(3))["boxes"]
    vals = [out[k, :, t : t + h, l : l + w].flatten() for k, (t, l, h, w) in enumerate(boxes.tolist())]
    return torch.cat(vals)


def test_fill_zero():
    assert (_erased_values("zero", torch.float32) == 0).all()
    assert (_erased_values("zero", torch.uint8) == 0).all()


def test_fill_uniform_within_image_range():
    v = _erased_values("uniform", torch.float32)
    assert v.min() >= 0 and v.max() < 1
    assert abs(float(v.mean()) - 0.5) < 0.02 and float(v.std()) == pytest.approx(1 / math.sqrt(12), abs=0.01)
    u = _erased_values("uniform", torch.uint8)
    assert u.dtype == torch.uint8
    assert int(u.min()) == 0 and int(u.max()) == 255
    assert torch.bincount(u.long(), minlength=256).min() > 0  # every integer level appears


def test_fill_normal_float_is_unclamped_standard_normal():
    v = _erased_values("normal", torch.float32)
    assert float(v.min()) < -2.0 and float(v.max()) > 3.0  # far outside [0, 1]: not clamped
    assert abs(float(v.mean())) < 0.03 and abs(float(v.std()) - 1.0) < 0.03


def test_fill_normal_on_uint8_is_the_reference_unclamped_fill_on_the_float_image():
    """A uint8 batch (the trainer's resident data) with "normal": the stage returns float32 in [0, 1] units,
    untouched pixels x / 255 (what the model's input makes of uint8), erased ones unclamped N(0, 1)
    (METHOD §2.3), never clamped to the uint8 range."""
    v = _erased_values("normal", torch.uint8)
    assert v.dtype == torch.float32
    assert float(v.min()) < -2.0 and float(v.max()) > 3.0
    assert abs(float(v.mean())) < 0.03 and abs(float(v.std()) - 1.0) < 0.03
    tf = BatchSoftRandomErasing(K, p=0.5, value="normal")
    images = make_images(32, torch.uint8)
    out, info = tf(images, generator=gen(4))
    boxes = tf.sample_params(32, 16, 16, generator=gen(4))["boxes"]
    assert out.dtype == torch.float32 and 0 < int(info.op_ids.sum()) < 32
    for k, (t, l, h, w) in enumerate(boxes.tolist()):
        keep = torch.ones(16, 16, dtype=torch.bool)
        keep[t:t + h, l:l + w] = False
        assert torch.equal(out[k][:, keep], images[k][:, keep].float() / 255)  # also non-erased samples


def test_draw_fill_uint8_normal_matches_formula():
    z = torch.empty(3, 8, 8).normal_(generator=gen(5))
    got = draw_fill("normal", (3, 8, 8), torch.uint8, generator=gen(5))
    assert torch.equal(got, torch.round(torch.clamp(z, 0, 1) * 255).to(torch.uint8))


# ------------------------------------------------------------------------------------------------
# reproducibility
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["zero", "normal"])
def test_same_seed_same_output_different_seed_different(value):
    tf = BatchSoftRandomErasing(K, p=0.5, value=value)
    images = make_images(32, torch.float32)
    a, ia = tf(images, generator=gen(42))
    b, ib = tf(images, generator=gen(42))
    c, ic = tf(images, generator=gen(43))
    assert torch.equal(a, b) and torch.equal(ia.confidences, ib.confidences)
    assert not torch.equal(a, c) and not torch.equal(ia.severities, ic.severities)


def test_per_sample_reproducible_under_manual_seed():
    tf = SoftRandomErasing(K, p=1.0, value="uniform")
    img = make_images(1, torch.uint8)[0]
    torch.manual_seed(9)
    a, ia = tf(img)
    torch.manual_seed(9)
    b, ib = tf(img)
    torch.manual_seed(10)
    c, ic = tf(img)
    assert torch.equal(a, b) and ia == ib
    assert not torch.equal(a, c)


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(p=1.5), ValueError, r"p must .*\[0, 1\].*1\.5"),
        (dict(p=-0.1), ValueError, r"p must .*-0\.1"),
        (dict(p="a"), ValueError, r"p must"),
        (dict(scale=(0.5, 0.2)), ValueError, r"scale must .*s_min <= s_max.*0\.5, 0\.2"),
        (dict(scale=(0.0, 0.2)), ValueError, r"scale must .*0 < s_min"),
        (dict(scale=(0.2, 1.2)), ValueError, r"scale must .*<= 1.*1\.2"),
        (dict(scale=0.3), ValueError, r"scale must be a pair"),
        (dict(ratio=(0.0, 1.0)), ValueError, r"ratio must .*0 < r_min.*0\.0"),
        (dict(ratio=(-1.0, 2.0)), ValueError, r"ratio must .*-1\.0"),
        (dict(ratio=(3.0, 1.0)), ValueError, r"ratio must .*r_min <= r_max"),
        (dict(value="random"), ValueError, r"value must be one of .*'random'"),
        (dict(hard=1), TypeError, r"hard must be a bool"),
        (dict(mapping=0.5), TypeError, r"mapping must be callable"),
    ],
)
@pytest.mark.parametrize("cls", [SoftRandomErasing, BatchSoftRandomErasing])
def test_bad_parameters(cls, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cls(K, **kwargs)


@pytest.mark.parametrize("cls", [SoftRandomErasing, BatchSoftRandomErasing])
@pytest.mark.parametrize("k,exc", [(1, ValueError), (0, ValueError), (2.5, TypeError), (True, TypeError)])
def test_bad_num_classes(cls, k, exc):
    with pytest.raises(exc, match="num_classes"):
        cls(k)


def test_bad_images():
    tf = SoftRandomErasing(K)
    with pytest.raises(TypeError, match="image must be a uint8 or floating"):
        tf(torch.zeros(3, 16, 16, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"image must have shape \[C, H, W\]"):
        tf(torch.zeros(16, 16))
    with pytest.raises(ValueError, match=r"image must have shape"):
        tf(torch.zeros(4, 16, 16))
    btf = BatchSoftRandomErasing(K)
    with pytest.raises(TypeError, match="images must be a uint8 or floating"):
        btf(torch.zeros(2, 3, 16, 16, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"images must have shape \[N, C, H, W\]"):
        btf(torch.zeros(3, 16, 16))


def test_bad_apply_arguments():
    btf = BatchSoftRandomErasing(K)
    images = torch.zeros(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"boxes must have shape \[2, 4\]"):
        btf.apply(images, torch.zeros(3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"boxes must lie inside .*boxes\[1\]=\[10, 0, 7, 2\]"):
        btf.apply(images, torch.tensor([[0, 0, 1, 1], [10, 0, 7, 2]]))
    with pytest.raises(TypeError, match="boxes must be an int64 tensor"):
        btf.apply(images, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="fill must be a tensor with the shape and dtype of images"):
        btf.apply(
            images, torch.zeros(2, 4, dtype=torch.int64), fill=torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
        )
