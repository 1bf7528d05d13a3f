"""Tests for soft noise injection (harness/augment/noise.py)."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kstest

from harness.augment.noise import BatchSoftNoise, SoftNoise, noise_batch, noise_image, patch_side
from mappings import Polynomial, noise_mapping
from conftest import DEVICES, DTYPES, K, gen, make_images



def reference_noise(image: torch.Tensor, sigma: float, box, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample reference written directly with torchvision functional ops.

    Returns (expected image, the standard-normal draws laid out as a full [C, H, W] noise tensor).
    """
    c, height, width = image.shape
    t, l, h, w = box if box is not None else (0, 0, height, width)
    x = F.to_dtype(image, torch.float32, scale=True) if image.dtype == torch.uint8 else image
    torch.manual_seed(seed)
    noisy = F.gaussian_noise(x[:, t : t + h, l : l + w], mean=0.0, sigma=sigma, clip=True)
    if image.dtype == torch.uint8:
        noisy = torch.round(noisy * 255).to(torch.uint8)
    expected = image.clone()
    expected[:, t : t + h, l : l + w] = noisy
    torch.manual_seed(seed)
    z = torch.randn(c, h, w, device=image.device)
    full = torch.zeros(c, height, width, device=image.device)
    full[:, t : t + h, l : l + w] = z
    return expected, full


# ------------------------------------------------------------------------------------------------
# batched kernel == per-sample torchvision functional kernel
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("patch_frac", [None, 0.8, 0.5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_apply_equals_per_sample_gaussian_noise(dtype, patch_frac, device):
    n = 12
    images = make_images(n, dtype, device=device)
    original = images.clone()
    tf = BatchSoftNoise(K, sigma_max=0.5, patch_frac=patch_frac)
    params = tf.sample_params(n, 16, 16, device=device, generator=gen(1))
    sigmas, boxes = params["sigmas"], params["boxes"]
    noise = torch.zeros(images.shape, device=device)
    expected = []
    for k in range(n):
        box = None if boxes is None else tuple(boxes[k].tolist())
        e, z = reference_noise(images[k], float(sigmas[k]), box, seed=100 + k)
        expected.append(e)
        noise[k] = z
        torch.manual_seed(100 + k)
        assert torch.equal(noise_image(images[k], float(sigmas[k]), box), e)  # module per-sample kernel
    out, info = tf.apply(images, sigmas, boxes, noise)
    assert torch.equal(images, original)
    assert out.dtype == dtype and out.shape == images.shape and out.device == images.device
    for k in range(n):
        assert torch.equal(out[k], expected[k]), k
    assert not torch.equal(out, images)


@pytest.mark.parametrize("patch_frac", [None, 0.8])
@pytest.mark.parametrize("dtype", DTYPES)
def test_per_sample_forward_equals_batched_apply(dtype, patch_frac):
    tf = SoftNoise(K, sigma_max=1.0, patch_frac=patch_frac)
    btf = BatchSoftNoise(K, sigma_max=1.0, patch_frac=patch_frac)
    for seed, img in enumerate(make_images(10, dtype, seed=4)):
        torch.manual_seed(seed)
        params = tf.make_params(img)
        state = torch.get_rng_state()
        torch.manual_seed(seed)
        out, info = tf(img)
        box = params["box"]
        t, l, h, w = box if box is not None else (0, 0, 16, 16)
        torch.set_rng_state(state)
        z = torch.zeros(1, 3, 16, 16)
        z[0, :, t : t + h, l : l + w] = torch.randn(3, h, w)
        boxes = None if box is None else torch.tensor([box])
        bout, binfo = btf.apply(img[None], torch.tensor([params["sigma"]]), boxes, z)
        assert torch.equal(bout[0], out)
        assert info.magnitude == pytest.approx(float(binfo.magnitudes[0]))
        assert info.severity == pytest.approx(float(binfo.severities[0]), abs=1e-6)
        assert info.confidence == pytest.approx(float(binfo.confidences[0]), abs=1e-6)
        assert info.op == "noise"


def test_uint8_rounds_after_adding_in_float():
    """x = 100/255 + 0.7/255 rounds to 101 (F.gaussian_noise on uint8 would truncate the noise to 0)."""
    images = torch.full((2, 1, 4, 4), 100, dtype=torch.uint8)
    noise = torch.ones(2, 1, 4, 4)
    noise[1] = -1.0
    out = noise_batch(images, torch.tensor([0.7 / 255, 0.7 / 255]), noise)
    assert (out[0] == 101).all() and (out[1] == 99).all()
    white = torch.full((1, 1, 2, 2), 250, dtype=torch.uint8)
    hi = noise_batch(white, torch.tensor([1.0]), torch.ones(1, 1, 2, 2))
    assert (hi == 255).all()  # clamped, no wrap-around


def test_float_output_clamped_to_unit_range():
    out, _ = BatchSoftNoise(K, sigma_max=5.0)(make_images(8, torch.float32), generator=gen(0))
    assert out.min() >= 0 and out.max() <= 1
    assert (out == 0).any() and (out == 1).any()


# ------------------------------------------------------------------------------------------------
# mask geometry
# ------------------------------------------------------------------------------------------------
def _possible_spans(side: int, extent: int) -> set[tuple[int, int]]:
    """All (start, length) pairs reachable by the documented centre distribution."""
    centres = range(extent) if side % 2 else range(extent + 1)
    spans = set()
    for c in centres:
        lo, hi = max(c - side // 2, 0), min(c - side // 2 + side, extent)
        spans.add((lo, hi - lo))
    return spans


@pytest.mark.parametrize("h,w,patch_frac", [(32, 32, 0.8), (16, 16, 0.5), (16, 24, 0.8), (20, 12, 0.5)])
def test_patch_boxes_follow_centre_distribution(h, w, patch_frac):
    side = patch_side(h, w, patch_frac)
    assert side == int(patch_frac * min(h, w))
    tf = BatchSoftNoise(K, sigma_max=1.0, patch_frac=patch_frac)
    params = tf.sample_params(6000, h, w, generator=gen(0))
    boxes = params["boxes"]
    rows = {tuple(b) for b in boxes[:, [0, 2]].tolist()}
    cols = {tuple(b) for b in boxes[:, [1, 3]].tolist()}
    assert rows == _possible_spans(side, h)  # every reachable span is hit, nothing else
    assert cols == _possible_spans(side, w)
    # interior patches have the full side
    assert (boxes[:, 2] <= side).all() and (boxes[:, 3] <= side).all()
    full = (boxes[:, 2] == side).float().mean()
    n_centres = h if side % 2 else h + 1
    n_full = sum(1 for c in range(n_centres) if c - side // 2 >= 0 and c - side // 2 + side <= h)
    assert float(full) == pytest.approx(n_full / n_centres, abs=0.03)


@pytest.mark.parametrize("dtype", DTYPES)
def test_patch_area_fraction_and_outside_pixels_unchanged(dtype):
    n = 40
    tf = BatchSoftNoise(K, sigma_max=1.0, patch_frac=0.8)
    images = make_images(n, dtype, 32, 32)
    params = tf.sample_params(n, 32, 32, generator=gen(2))
    out, info = tf.apply(images, **params, generator=gen(3))
    for k, (t, l, h, w) in enumerate(params["boxes"].tolist()):
        mask = torch.zeros(32, 32, dtype=torch.bool)
        mask[t : t + h, l : l + w] = True
        changed = (out[k] != images[k]).any(dim=0)
        assert not changed[~mask].any()  # outside the patch: untouched
        rho = h * w / 1024
        expected = min(rho * float(params["sigmas"][k]), 1.0)
        assert float(info.severities[k]) == pytest.approx(expected, rel=1e-5)
        if float(params["sigmas"][k]) > 0.05:
            assert changed[mask].float().mean() > 0.5  # inside: mostly changed
    assert float(info.severities.max()) <= 0.64 + 1e-6  # rho <= 25^2/32^2


def test_full_image_noise_changes_everything_and_rho_is_one():
    tf = BatchSoftNoise(K, sigma_max=0.1)
    images = torch.full((4, 3, 16, 16), 0.5)
    params = tf.sample_params(4, 16, 16, generator=gen(0))
    assert params["boxes"] is None
    out, info = tf.apply(images, **params, generator=gen(1))
    assert ((out != images).float().mean(dim=(1, 2, 3)) > 0.95).all()
    assert torch.allclose(info.severities, params["sigmas"])


# ------------------------------------------------------------------------------------------------
# sigma distribution, confidence, provenance
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma_max", [0.1, 1.0, 3.0])
def test_sigma_uniform_up_to_sigma_max(sigma_max):
    sig = BatchSoftNoise(K, sigma_max=sigma_max).sample_params(3000, 16, 16, generator=gen(5))["sigmas"]
    assert sig.dtype == torch.float32
    assert (sig >= 0).all() and (sig <= sigma_max).all()
    assert kstest(sig.double().numpy() / sigma_max, "uniform").pvalue > 1e-3
    torch.manual_seed(0)
    tf = SoftNoise(K, sigma_max=sigma_max)
    per_sample = [tf(torch.zeros(1, 4, 4))[1].magnitude for _ in range(300)]
    assert all(0 <= s <= sigma_max for s in per_sample)
    assert kstest([s / sigma_max for s in per_sample], "uniform").pvalue > 1e-3


box_strategy = st.integers(0, 16).flatmap(
    lambda h: st.integers(0, 16).flatmap(
        lambda w: st.tuples(st.integers(0, 16 - h), st.integers(0, 16 - w), st.just(h), st.just(w))
    )
)


@settings(deadline=None, max_examples=60)
@given(
    sigmas=st.lists(st.floats(0.0, 2.0, width=32), min_size=1, max_size=5),
    data=st.data(),
    k=st.integers(2, 1000),
    use_boxes=st.booleans(),
)
def test_confidence_formula_default_mapping(sigmas, data, k, use_boxes):
    n = len(sigmas)
    boxes = data.draw(st.lists(box_strategy, min_size=n, max_size=n)) if use_boxes else None
    tf = BatchSoftNoise(k, sigma_max=2.0)
    sig = torch.tensor(sigmas, dtype=torch.float32)
    _, info = tf.apply(
        torch.zeros(n, 3, 16, 16),
        sig,
        None if boxes is None else torch.tensor(boxes),
        torch.zeros(n, 3, 16, 16),
    )
    for i in range(n):
        rho = 1.0 if boxes is None else boxes[i][2] * boxes[i][3] / 256
        sev = min(rho * sigmas[i], 1.0)
        assert float(info.severities[i]) == pytest.approx(sev, abs=1e-6)
        assert float(info.magnitudes[i]) == pytest.approx(sigmas[i], abs=1e-7)
        assert float(info.confidences[i]) == pytest.approx(max(1.0 - 0.7 * sev**2, 1.0 / k), abs=1e-6)
    assert torch.equal(info.op_ids, torch.ones(n, dtype=torch.int64))
    assert info.stage == "noise"


@settings(deadline=None, max_examples=40)
@given(
    sigma=st.floats(0.0, 1.0, width=32),
    p_min=st.floats(0.0, 1.0),
    power=st.floats(0.25, 4.0),
    k=st.integers(2, 50),
)
def test_confidence_custom_mapping_floored_at_chance(sigma, p_min, power, k):
    tf = BatchSoftNoise(k, sigma_max=1.0, mapping=Polynomial(p_min, power))
    half = torch.tensor([[0, 0, 4, 8]])  # rho = 0.5
    _, info = tf.apply(torch.zeros(1, 1, 8, 8), torch.tensor([sigma]), half, torch.zeros(1, 1, 8, 8))
    sev = 0.5 * sigma
    assert float(info.confidences[0]) == pytest.approx(max(1 - (1 - p_min) * sev**power, 1 / k), abs=1e-5)


@settings(deadline=None, max_examples=20)
@given(
    seed=st.integers(0, 2**31 - 1),
    sigma_max=st.floats(0.01, 10.0),
    patch=st.sampled_from([None, 0.3, 0.8, 1.0]),
)
def test_severity_and_confidence_ranges(seed, sigma_max, patch):
    tf = BatchSoftNoise(K, sigma_max=sigma_max, patch_frac=patch)
    _, info = tf(make_images(16, torch.uint8), generator=gen(seed))
    assert ((info.severities >= 0) & (info.severities <= 1)).all()
    assert ((info.confidences >= 1 / K) & (info.confidences <= 1)).all()
    assert ((info.magnitudes >= 0) & (info.magnitudes <= sigma_max)).all()


def test_hard_gives_ones_and_default_mapping():
    images = make_images(16, torch.float32)
    out_s, info_s = BatchSoftNoise(K, sigma_max=1.0, patch_frac=0.8)(images, generator=gen(1))
    out_h, info_h = BatchSoftNoise(K, sigma_max=1.0, patch_frac=0.8, hard=True)(images, generator=gen(1))
    assert torch.equal(out_s, out_h)
    assert torch.equal(info_h.confidences, torch.ones(16)) and (info_s.confidences < 1).all()
    assert torch.equal(info_h.severities, info_s.severities)
    torch.manual_seed(0)
    _, one = SoftNoise(K, sigma_max=1.0, hard=True)(images[0])
    assert one.confidence == 1.0 and one.severity > 0
    assert BatchSoftNoise(K).mapping == noise_mapping() and SoftNoise(K).mapping == noise_mapping()


# ------------------------------------------------------------------------------------------------
# reproducibility
# ------------------------------------------------------------------------------------------------
def test_same_seed_same_output_different_seed_different():
    tf = BatchSoftNoise(K, sigma_max=1.0, patch_frac=0.8)
    images = make_images(8, torch.uint8)
    a, ia = tf(images, generator=gen(7))
    b, ib = tf(images, generator=gen(7))
    c, ic = tf(images, generator=gen(8))
    assert torch.equal(a, b) and torch.equal(ia.severities, ib.severities)
    assert not torch.equal(a, c) and not torch.equal(ia.magnitudes, ic.magnitudes)
    torch.manual_seed(3)
    x, _ = SoftNoise(K, 1.0, 0.8)(images[0])
    torch.manual_seed(3)
    y, _ = SoftNoise(K, 1.0, 0.8)(images[0])
    assert torch.equal(x, y)


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(sigma_max=0.0), ValueError, r"sigma_max must be .*> 0.*sigma_max=0\.0"),
        (dict(sigma_max=-1.0), ValueError, r"sigma_max.*-1\.0"),
        (dict(sigma_max=float("inf")), ValueError, r"sigma_max"),
        (dict(patch_frac=0.0), ValueError, r"patch_frac must be .*\(0, 1\].*0\.0"),
        (dict(patch_frac=1.5), ValueError, r"patch_frac.*1\.5"),
        (dict(hard="no"), TypeError, r"hard must be a bool"),
        (dict(mapping="poly"), TypeError, r"mapping must be callable"),
    ],
)
@pytest.mark.parametrize("cls", [SoftNoise, BatchSoftNoise])
def test_bad_parameters(cls, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cls(K, **kwargs)


@pytest.mark.parametrize("cls", [SoftNoise, BatchSoftNoise])
def test_bad_num_classes(cls):
    with pytest.raises(ValueError, match="num_classes"):
        cls(1)


def test_bad_images_and_apply_arguments():
    with pytest.raises(TypeError, match="image must be a uint8 or floating"):
        SoftNoise(K)(torch.zeros(3, 8, 8, dtype=torch.int16))
    with pytest.raises(ValueError, match=r"image must have shape \[C, H, W\]"):
        SoftNoise(K)(torch.zeros(1, 3, 8, 8))
    btf = BatchSoftNoise(K)
    images = torch.zeros(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"images must have shape"):
        btf(torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match=r"sigmas must be finite and >= 0"):
        btf.apply(images, torch.tensor([0.1, -0.1]))
    with pytest.raises(ValueError, match=r"sigmas must be a floating tensor of shape \[2\]"):
        btf.apply(images, torch.tensor([0.1]))
    with pytest.raises(ValueError, match=r"boxes must lie inside"):
        btf.apply(images, torch.tensor([0.1, 0.1]), torch.tensor([[0, 0, 9, 1], [0, 0, 1, 1]]))
    with pytest.raises(ValueError, match=r"noise must be a floating tensor of shape"):
        btf.apply(images, torch.tensor([0.1, 0.1]), None, torch.zeros(2, 3, 8, 7))
