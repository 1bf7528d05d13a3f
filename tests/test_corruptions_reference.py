"""Reference behaviour of the corruption building blocks (CORRUPTIONS.md §2-§4), checked cheaply.

Closed forms, the spec's tables, and equality with scikit-image / SciPy / Pillow where the original
called them. No OpenCV or ImageMagick needed.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi
from skimage import color as skcolor
from skimage.filters import gaussian as sk_gaussian

from harness.corruptions import corrupt, corruption_params, frost_textures_available
from harness.corruptions.blur import glass_shuffle
from harness.corruptions.common import (
    Context,
    clipped_zoom,
    disk_kernel,
    hsv_to_rgb,
    motion_blur,
    motion_blur_taps,
    plasma_fractal,
    rgb_to_hsv,
    zoom_operator,
)
from harness.corruptions.params import ZOOM_FACTORS
from harness.corruptions.spatter import canny, chamfer_distance, equalize_hist, spatter
from harness.corruptions.textures import FROST_PACKAGE_HINT

rng0 = np.random.default_rng(1234)
X = rng0.integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
X64 = rng0.integers(0, 256, (3, 64, 64, 3)).astype(np.uint8)


def _store(y):
    return (np.clip(y, 0, 1) * 255).astype(np.uint8)


# ------------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("sev", [1, 3, 5])
def test_contrast_closed_form_and_truncation_quirk(sev):
    c = corruption_params("contrast", sev)
    x = X / 255.0
    mu = np.stack([xi.mean(axis=(0, 1), keepdims=True) for xi in x])  # per image, per channel
    np.testing.assert_array_equal(corrupt(X, "contrast", sev), _store((x - mu) * c + mu))
    # §2.1: a flat mid-grey image loses one level to the mean's round-off before truncation
    flat = np.full((1, 32, 32, 3), 128, np.uint8)
    assert (corrupt(flat, "contrast", sev) == 127).all()


@pytest.mark.parametrize("params", ["cifar", "tinyimagenet"])
def test_brightness_and_saturate_equal_skimage_hsv_round_trip(params):
    x = X / 255.0
    hsv = skcolor.rgb2hsv(x, channel_axis=-1)
    for sev in (1, 5):
        dv = corruption_params("brightness", sev, params)
        h = hsv.copy()
        h[..., 2] = np.clip(h[..., 2] + dv, 0, 1)
        np.testing.assert_array_equal(
            corrupt(X, "brightness", sev, params=params), _store(skcolor.hsv2rgb(h, channel_axis=-1))
        )
        mul, add = corruption_params("saturate", sev, params)
        h = hsv.copy()
        h[..., 1] = np.clip(h[..., 1] * mul + add, 0, 1)
        np.testing.assert_array_equal(
            corrupt(X, "saturate", sev, params=params), _store(skcolor.hsv2rgb(h, channel_axis=-1))
        )


def test_brightness_close_to_closed_form():
    """§3.11: rgb * min(V + dV, 1) / V agrees up to ±1 level (the HSV path is the faithful one)."""
    x = X / 255.0
    v = x.max(axis=-1, keepdims=True)
    dv = 0.3
    closed = np.where(v > 0, x * np.minimum(v + dv, 1) / np.where(v > 0, v, 1), dv)
    diff = corrupt(X, "brightness", 5).astype(int) - _store(closed)
    assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 0.05


def test_hsv_matches_skimage_on_ties_and_greys():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 8, 8, 3)).astype(np.float64)
    x[:20] = x[:20, ..., :1]  # grey: all channels equal
    x[20:40, ..., 1] = x[20:40, ..., 0]  # R == G ties
    x[40:60, ..., 2] = x[40:60, ..., 1]  # G == B ties
    x /= 255
    np.testing.assert_array_equal(rgb_to_hsv(x), skcolor.rgb2hsv(x, channel_axis=-1))
    h = rgb_to_hsv(x)
    h[..., 1] = np.clip(h[..., 1] * 3 + 0.1, 0, 1)
    np.testing.assert_array_equal(hsv_to_rgb(h), skcolor.hsv2rgb(h, channel_axis=-1))


@pytest.mark.parametrize("params", ["cifar", "tinyimagenet"])
def test_gaussian_blur_equals_skimage(params):
    x = X if params == "cifar" else X64
    for sev in (1, 5):
        sigma = corruption_params("gaussian_blur", sev, params)
        ref = np.stack([_store(sk_gaussian(xi / 255.0, sigma=sigma, channel_axis=-1)) for xi in x])
        np.testing.assert_array_equal(corrupt(x, "gaussian_blur", sev, params=params), ref)


@pytest.mark.parametrize("params", ["cifar", "tinyimagenet"])
def test_pixelate_equals_pillow_box(params):
    x = X if params == "cifar" else X64
    size = x.shape[1]
    for sev in range(1, 6):
        side = int(size * corruption_params("pixelate", sev, params))
        ref = np.stack(
            [
                np.asarray(
                    Image.fromarray(xi).resize((side, side), Image.BOX).resize((size, size), Image.BOX)
                )
                for xi in x
            ]
        )
        np.testing.assert_array_equal(corrupt(x, "pixelate", sev, params=params), ref)


def test_jpeg_equals_pillow_round_trip():
    q = corruption_params("jpeg_compression", 3)
    ref = []
    for xi in X:
        buf = io.BytesIO()
        Image.fromarray(xi).save(buf, "JPEG", quality=q)
        ref.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    np.testing.assert_array_equal(corrupt(X, "jpeg_compression", 3), np.stack(ref))


@pytest.mark.parametrize("sev", [1, 2, 5])
def test_zoom_blur_matches_scipy_zoom_recipe(sev):
    """§2.3 + §3.7 written with scipy.ndimage.zoom. Bit-identical in our runs; the tolerance only allows
    for BLAS summation-order differences on other machines."""

    def clipped(img, z):
        h = img.shape[0]
        ch = int(np.ceil(h / z))
        top = (h - ch) // 2
        img = ndi.zoom(img[top : top + ch, top : top + ch], (z, z, 1), order=1)
        t = (img.shape[0] - h) // 2
        return img[t : t + h, t : t + h]

    factors = corruption_params("zoom_blur", sev)
    ref = []
    for xi in X:
        x = (xi / 255.0).astype(np.float32)
        acc = np.zeros_like(x)
        for z in factors:
            acc += clipped(x, z)
        ref.append(_store((x + acc) / (len(factors) + 1)))
    diff = corrupt(X, "zoom_blur", sev).astype(int) - np.stack(ref)
    assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 1e-3


def test_clipped_zoom_table():
    """§2.3 table for S = 32: (ch, n) and effective scale (n - 1)/(ch - 1), identity at 1.00 / 1.01."""
    np.testing.assert_array_equal(zoom_operator(32, 1.0), np.eye(32))
    np.testing.assert_array_equal(zoom_operator(32, 1.01), np.eye(32))
    a = np.arange(32.0)
    z = dict(zip((1.04, 1.13, 1.24, 1.25), np.array(ZOOM_FACTORS[4])[[4, 13, 24, 25]]))
    assert np.allclose(list(z), list(z.values()))
    # z = 1.25 is arange's 1.2500000000000002: n = round(26 z) = 33, not round(32.5) = 32 (ties to even)
    assert round(26 * z[1.25]) == 33 and round(26 * 1.25) == 32
    for zz, scale, fixed in [
        (1.04, 1.0333, 0.0),
        (1.13, 1.1429, 8.0),
        (1.24, 1.24, 15.5),
        (1.25, 1.28, 13.714),
    ]:
        # zooming the ramp a(i) = i: output o reads input fixed + (o - fixed) / scale
        out = zoom_operator(32, z[zz]) @ a
        o = np.arange(32)
        np.testing.assert_allclose(out, (o - fixed) / scale + fixed, atol=2e-3)
    f = np.random.default_rng(0).random((2, 32, 32))
    np.testing.assert_allclose(
        clipped_zoom(f, 1.2)[0], zoom_operator(32, 1.2) @ f[0] @ zoom_operator(32, 1.2).T
    )


def test_fog_closed_form_properties():
    """§3.10: output never exceeds the clean maximum; a black image stays black."""
    x = np.concatenate([X[:3], np.zeros((1, 32, 32, 3), np.uint8)])
    for sev in (1, 5):
        y = corrupt(x, "fog", sev, seed=4)
        assert (y.reshape(4, -1).max(axis=1) <= x.reshape(4, -1).max(axis=1)).all()
        assert (y[3] == 0).all()


# ------------------------------------------------------------------------------- building blocks
def test_plasma_fractal_size_range_and_draw_count():
    n = 32
    u = np.random.default_rng(0).random((3, n * n - 1))  # 1023 draws for N = 32 (§2.4)
    p = plasma_fractal(u, n, 2.0)
    assert p.shape == (3, n, n) and p.dtype == np.float64
    np.testing.assert_allclose(p.min(axis=(1, 2)), 0)
    np.testing.assert_allclose(p.max(axis=(1, 2)), 1)
    assert not np.allclose(p[0], p[1])
    with pytest.raises(ValueError, match="1023 uniforms"):
        plasma_fractal(u[:, :-1], n, 2.0)
    with pytest.raises(ValueError, match="power of two"):
        plasma_fractal(np.zeros((1, 24 * 24 - 1)), 24, 2.0)
    # larger decay -> smoother map (smaller mean neighbour difference)
    rough = np.abs(np.diff(plasma_fractal(u, n, 1.5), axis=1)).mean()
    smooth = np.abs(np.diff(plasma_fractal(u, n, 3.0), axis=1)).mean()
    assert smooth < rough


def test_plasma_fractal_first_level_by_hand():
    """N = 2: one level. P[0,0] = 0; centre (1,1) = 0 + w*U; both diamonds = mean(0, 0, c, c)/... + w*U."""
    u = np.array([[0.75, 0.5, 0.25]])  # w = 100 -> perturbations w*(-w + 2w u) = 5000, 0, -5000
    # raw: P00 = 0, P11 = 5000, P01 = (0 + 0 + 5000 + 5000)/4 + 0 = 2500, P10 = 2500 - 5000 = -2500
    p = plasma_fractal(u, 2, 2.0)[0]
    np.testing.assert_allclose(p, (np.array([[0, 2500], [-2500, 5000]]) + 2500) / 7500)


@pytest.mark.parametrize(
    "r,a,n_inside", [(0.3, 0.4, 1), (0.5, 0.6, 1), (1, 0.2, 5), (1.5, 0.1, 9), (2.5, 0.01, 21), (3, 0.1, 29)]
)
def test_disk_kernel(r, a, n_inside):
    k = disk_kernel(r, a)
    assert k.shape == (17, 17) and k.dtype == np.float32
    assert abs(float(k.sum(dtype=np.float64)) - 1) < 1e-6
    L = np.arange(-8, 9)
    assert int(((L[:, None] ** 2 + L[None] ** 2) <= r * r).sum()) == n_inside
    np.testing.assert_allclose(k, k.T)
    np.testing.assert_allclose(k, k[::-1, ::-1])


def test_disk_kernel_antialias_weights():
    """§2.7: a one-pixel disk becomes the 3-tap weights' outer product ([0.0404, 0.9192, 0.0404] at a=0.4)."""
    k = disk_kernel(0.3, 0.4)
    np.testing.assert_allclose(k[8, 7:10], 0.9192 * np.array([0.0404, 0.9192, 0.0404]), atol=2e-4)
    np.testing.assert_allclose(
        disk_kernel(0.5, 0.6)[8, 7:10], 0.6672 * np.array([0.1664, 0.6672, 0.1664]), atol=2e-4
    )


def test_defocus_blur_plus_and_box_kernels():
    """CIFAR sev 4 ~ a 5-pixel plus (a = 0.2), sev 5 a 3x3 box (mirror border)."""
    x = X / 255.0
    plus = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]]) / 5.0
    ref4 = ndi.correlate(x, plus[None, :, :, None], mode="mirror")
    assert np.abs(corrupt(X, "defocus_blur", 4).astype(int) - _store(ref4)).max() <= 1
    ref5 = ndi.correlate(x, np.full((1, 3, 3, 1), 1 / 9), mode="mirror")
    assert np.abs(corrupt(X, "defocus_blur", 5).astype(int) - _store(ref5)).max() <= 1


def test_motion_blur_taps_and_weights():
    theta = np.array([0.0, 30.0, -45.0])
    for r, w in [(6, 13), (8, 17), (9, 19), (10, 21), (12, 25), (14, 29)]:
        assert len(motion_blur_taps(r, 2, theta)[0]) == w
    wts, oy, ox = motion_blur_taps(6, 1, theta)
    np.testing.assert_allclose(wts[:5], [0.5703, 0.3459, 0.0772, 0.0063, 0.0002], atol=1e-4)
    assert abs(wts.sum() - 1) < 1e-12
    np.testing.assert_allclose(
        motion_blur_taps(9, 2.5, theta)[0][:6], [0.2752, 0.2541, 0.1999, 0.1340, 0.0765, 0.0372], atol=1e-4
    )
    # theta = 0: taps to the right on the same row
    np.testing.assert_array_equal(oy[0], 0)
    np.testing.assert_array_equal(ox[0], np.arange(13))
    # halves round towards -inf: i*cos(-45°) - 1/2, i*sin(-45°) - 1/2 -> ceil
    i = np.arange(13)
    np.testing.assert_array_equal(oy[2], np.ceil(i * np.sin(np.deg2rad(-45)) - 0.5))


def test_motion_blur_point_smears_backwards_and_quantises():
    img = np.zeros((1, 32, 32), np.uint8)
    img[0, 16, 16] = 255
    out = motion_blur(img, 6, 2, np.array([0.0]))[0]
    row = out[16]
    # output (y, x) gathers x + i: the bright point shows up at x = 16 - i (to the left), decaying
    assert row[16] > row[15] > row[14] > row[13] > 0 and row[17:].max() == 0
    assert out[:16].max() == 0 and out[17:].max() == 0
    w = motion_blur_taps(6, 2, np.array([0.0]))[0]
    expect = [np.floor(np.floor(w[i] * 257 * 255 + 0.5) / 257) for i in range(4)]
    np.testing.assert_array_equal(row[16:12:-1], expect)
    # a flat image stays flat (weights sum to 1; edge replication)
    flat = np.full((2, 32, 32, 3), 200, np.uint8)
    np.testing.assert_array_equal(motion_blur(flat, 9, 2.5, np.array([10.0, -40.0])), flat)


@pytest.mark.parametrize("radius,sigma", [(6, 1), (9, 2.5), (14, 12)])
def test_motion_blur_equals_line_kernel_correlation(radius, sigma):
    """§2.5 'equivalent line-kernel convolution': accumulate w_i at K[c + oy_i, c + ox_i] (coinciding taps
    add up, e.g. near ±45°), correlate with edge replication on the 0..255 scale, quantise like IM Q16."""
    rng = np.random.default_rng(radius)
    img = rng.integers(0, 256, (4, 24, 24, 3)).astype(np.uint8)
    theta = np.array([-45.0, -13.7, 44.9, -120.0])
    wts, oy, ox = motion_blur_taps(radius, sigma, theta)
    out = motion_blur(img, radius, sigma, theta)
    W = len(wts)
    for k in range(len(img)):
        K = np.zeros((2 * W - 1, 2 * W - 1))
        np.add.at(K, (W - 1 + oy[k], W - 1 + ox[k]), wts)
        acc = ndi.correlate(img[k].astype(np.float64) * 257, K[:, :, None], mode="nearest")
        ref = (np.clip(np.floor(acc + 0.5), 0, 65535) // 257).astype(np.uint8)
        diff = out[k].astype(int) - ref
        assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 1e-3  # float summation order only


def _naive_glass(y, dy, dx, delta):
    size = y.shape[0]
    for a, h in enumerate(range(size - delta, delta, -1)):
        for b, w in enumerate(range(size - delta, delta, -1)):
            y[h, w] = y[h + dy[a, b], w + dx[a, b]]


@pytest.mark.parametrize("size,delta", [(32, 1), (32, 2), (64, 2)])
def test_glass_shuffle_equals_sequential_loop(size, delta):
    rng = np.random.default_rng(size + delta)
    n = size - 2 * delta
    y = rng.integers(0, 256, (3, size, size, 3)).astype(np.uint8)
    dy = rng.integers(-delta, delta, (3, n, n))
    dx = rng.integers(-delta, delta, (3, n, n))
    ref = y.copy()
    for i in range(3):
        _naive_glass(ref[i], dy[i], dx[i], delta)
    glass_shuffle(y, dy, dx, delta)
    np.testing.assert_array_equal(y, ref)


def test_glass_blur_borders_and_identity_blur_at_severity_1():
    """CIFAR sev 1: sigma 0.05 -> identity blur; only copies from {-1, 0} offsets; rows/cols 0, 1 untouched."""
    y = corrupt(X, "glass_blur", 1, seed=0)
    np.testing.assert_array_equal(y[:, :2], X[:, :2])
    np.testing.assert_array_equal(y[:, :, :2], X[:, :, :2])
    for h in range(2, 32, 7):
        for w in range(2, 32, 5):
            cands = X[:, h - 1 : h + 1, w - 1 : w + 1].reshape(len(X), 4, 3)
            assert all((cands[i] == y[i, h, w]).all(axis=1).any() for i in range(len(X)))


def test_noise_statistics():
    grey = np.full((64, 32, 32, 3), 128, np.uint8)
    d = (corrupt(grey, "gaussian_noise", 5, seed=1).astype(np.float64) - 128) / 255
    assert abs(d.std() - 0.10) < 0.003
    assert abs(d.mean() + 0.5 / 255) < 0.002  # truncation: half a level darker on average
    # impulse: hit rate p per element, salt vs pepper 1/2, coloured (mostly one channel)
    y = corrupt(grey, "impulse_noise", 5, seed=1)
    hit = y != 128
    assert abs(hit.mean() - 0.07) < 0.005
    assert set(np.unique(y)) == {0, 128, 255}
    assert abs((y == 255).sum() / hit.sum() - 0.5) < 0.03
    assert (hit.sum(axis=-1) == 1).sum() > 0.8 * hit.any(axis=-1).sum()
    # shot noise: black stays black, outputs are multiples of 1/c before the scale
    blk = np.zeros((2, 32, 32, 3), np.uint8)
    assert (corrupt(blk, "shot_noise", 5, seed=0) == 0).all()
    assert (corrupt(blk, "speckle_noise", 5, seed=0) == 0).all()
    s = (corrupt(grey, "shot_noise", 5, seed=1).astype(np.float64) - 128) / 255
    assert abs(s.std() - np.sqrt(128 / 255 / 50)) < 0.01


def test_elastic_severity_1_is_a_small_affine():
    """Sev 1 has alpha = 0: a pure affine; corner jitter <= 2.56 px keeps it near the identity."""
    smooth = np.repeat(np.repeat(X[:, ::4, ::4], 4, axis=1), 4, axis=2)
    y = corrupt(smooth, "elastic_transform", 1, seed=0)
    assert y.shape == smooth.shape and not np.array_equal(y, smooth)
    assert np.abs(y.astype(int) - smooth).mean() < 60


# ------------------------------------------------------------------------------- spatter pieces
def test_chamfer_distance_weights():
    m = np.ones((1, 9, 9), bool)
    m[0, 4, 4] = False
    d = chamfer_distance(m)[0]
    assert d[4, 4] == 0 and d[4, 5] == 1 and d[3, 4] == 1
    assert d[5, 5] == np.float32(1.4) and d[6, 5] == np.float32(2.1969) and d[4, 6] == 2
    assert d[6, 6] == np.float32(np.float32(1.4) + np.float32(1.4))
    assert np.isinf(chamfer_distance(np.ones((1, 4, 4), bool))).all()


def test_equalize_hist_formula():
    img = np.array([[[3, 3, 5, 7], [7, 7, 9, 9]]], np.uint8)
    out = equalize_hist(img)[0]
    # i0 = 3 (2 pixels), N - 2 = 6; lut[5] = round(255*1/6) = 42, lut[7] = round(255*4/6) = 170, lut[9] = 255
    np.testing.assert_array_equal(out, [[0, 0, 42, 170], [170, 170, 255, 255]])
    flat = np.full((1, 3, 3), 17, np.uint8)
    np.testing.assert_array_equal(equalize_hist(flat), flat)


def test_canny_finds_a_step_edge():
    img = np.zeros((1, 16, 16), np.uint8)
    img[:, :, 8:] = 200
    e = canny(img, 50, 150)[0]
    assert e[:, 7:9].any(axis=1).all()  # one vertical edge line at the step
    assert not e[:, :6].any() and not e[:, 10:].any()
    assert not canny(np.full((1, 16, 16), 90, np.uint8), 50, 150).any()


class _ZeroRng:
    def normal(self, loc, scale, size):
        return np.zeros(size)


def test_spatter_without_liquid_returns_image_unchanged():
    """Documented deviation: the original's 0/0 (NaN) case returns the clean image."""
    ctx = Context(params="cifar", seed=0, corruption_id=17, severity=1, first_index=0, n=2, size=32)
    ctx.__dict__["rngs"] = [_ZeroRng(), _ZeroRng()]
    for sev in (1, 4):
        np.testing.assert_array_equal(spatter(X[:2], corruption_params("spatter", sev), ctx), X[:2])


# ------------------------------------------------------------------------------- frost
needs_frost = pytest.mark.skipif(not frost_textures_available(), reason=FROST_PACKAGE_HINT)


@needs_frost
def test_frost_textures_sizes_and_checksums():
    from harness.corruptions.textures import frost_textures

    assert [t.shape[:2] for t in frost_textures(1)] == [
        (600, 900),
        (315, 560),
        (315, 560),
        (350, 527),
        (495, 660),
    ]
    assert [t.shape[:2] for t in frost_textures(0.2)] == [
        (120, 180),
        (63, 112),
        (63, 112),
        (70, 105),
        (99, 132),
    ]
    assert [t.shape[:2] for t in frost_textures(0.3)] == [
        (180, 270),
        (94, 168),
        (94, 168),
        (105, 158),
        (148, 198),
    ]
    # f = 0.2 is exact point sampling of pixels (5i + 2, 5j + 2)
    np.testing.assert_array_equal(frost_textures(0.2)[1], frost_textures(1)[1][2::5, 2::5][:63, :112])


@needs_frost
def test_frost_is_a_blend_of_image_and_a_texture_crop():
    from harness.corruptions.textures import frost_textures

    tex = frost_textures(0.2)
    black = np.zeros((4, 32, 32, 3), np.uint8)
    _, b = corruption_params("frost", 5)
    y = corrupt(black, "frost", 5, seed=9).astype(np.float64)
    # black image: output = floor(b * crop); find the crop in one of the five textures
    for yi in y:
        found = False
        for t in tex:
            cand = np.floor(b * t.astype(np.float64))
            H, W = t.shape[:2]
            for r0 in range(H - 32):
                rows = np.flatnonzero((cand[r0, : W - 32, :] == yi[0, 0]).all(axis=-1))
                for c0 in rows:
                    if np.array_equal(cand[r0 : r0 + 32, c0 : c0 + 32], yi):
                        found = True
                        break
                if found:
                    break
            if found:
                break
        assert found
