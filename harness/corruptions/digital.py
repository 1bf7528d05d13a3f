"""Digital corruptions: contrast, elastic_transform, pixelate, jpeg_compression (benchmark); saturate (extra).

CORRUPTIONS.md §3.12-3.15 and §3.19, vectorised over the batch axis except JPEG (a codec call per image).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from harness.corruptions.common import (
    Context,
    bilinear_sample,
    gaussian,
    hsv_to_rgb,
    rgb_to_hsv,
    to_float,
    to_uint8,
)

__all__ = [
    "box_resize",
    "contrast",
    "elastic_transform",
    "jpeg_compression",
    "pixelate",
    "saturate",
    "warp_affine_reflect101",
]


def contrast(u: np.ndarray, c: float, ctx: Context) -> np.ndarray:
    """§3.12: ``255 * clip01((x - mu) c + mu)`` with **per-channel** spatial means mu (colour casts kept)."""
    x = to_float(u)
    mu = x.mean(axis=(1, 2), keepdims=True)
    return to_uint8((x - mu) * c + mu)


# ---------------------------------------------------------------------------------- elastic
def warp_affine_reflect101(img: np.ndarray, minv: np.ndarray) -> np.ndarray:
    """Bilinear inverse-mapped affine warp of float32 ``[N, H, W, C]``: ``out(p) = img(minv[n] @ (p, 1))``.

    Border reflect-101 (SciPy ``mirror``), as ``cv2.warpAffine(img, M, (W, H),
    borderMode=BORDER_REFLECT_101)`` with ``minv = M^-1``. Coordinates, weights and sum are float64
    (float32 weights lose a grey level on flat areas after truncation). The whole elastic_transform
    agreed with an OpenCV 5.0 + SciPy reference up to ±1 in ~1e-5 of the values in our development check.
    """
    h, w = img.shape[1:3]
    jj = np.arange(w, dtype=np.float64)[None, None, :]
    ii = np.arange(h, dtype=np.float64)[None, :, None]
    m = minv[:, :, :, None, None]
    src_x = m[:, 0, 0] * jj + m[:, 0, 1] * ii + m[:, 0, 2]
    src_y = m[:, 1, 0] * jj + m[:, 1, 1] * ii + m[:, 1, 2]
    return bilinear_sample(img, src_y, src_x, "mirror", dtype=np.float64).astype(np.float32)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a batch of 2x3 affine maps ``[N, 2, 3]`` (explicit 2x2 inverse, float64)."""
    a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    det = a * e - b * d
    inv_det = np.where(det != 0, 1.0 / np.where(det != 0, det, 1.0), 0.0)
    ia, ib, id_, ie = e * inv_det, -b * inv_det, -d * inv_det, a * inv_det
    ic = -ia * c - ib * f
    if_ = -id_ * c - ie * f
    return np.stack([np.stack([ia, ib, ic], axis=1), np.stack([id_, ie, if_], axis=1)], axis=1)


def elastic_transform(u: np.ndarray, p: tuple, ctx: Context) -> np.ndarray:
    """§3.13: random 3-point affine warp, then smooth random displacement fields (bilinear both times).

    Draw order per image: ``uniform(-eps, eps, (3, 2))`` (target jitter, cast to float32), then the
    ``uniform(-1, 1, (S, S))`` field for dx (columns), then the one for dy (rows); all draws always happen.
    """
    alpha, sigma, eps = p
    n, size = u.shape[0], u.shape[1]
    x = to_float(u, np.float32)
    jitter = np.empty((n, 3, 2), dtype=np.float64)
    fields = np.empty((2, n, size, size), dtype=np.float64)
    for k, rng in enumerate(ctx.rngs):
        jitter[k] = rng.uniform(-eps, eps, size=(3, 2))
        fields[0, k] = rng.uniform(-1, 1, size=(size, size))
        fields[1, k] = rng.uniform(-1, 1, size=(size, size))
    c0, q = size // 2, size // 3
    src = np.array([[c0 + q, c0 + q], [c0 + q, c0 - q], [c0 - q, c0 - q]], dtype=np.float32)  # (x, y)
    dst = src[None] + jitter.astype(np.float32)  # float32, [N, 3, 2]
    # M maps src -> dst exactly (3-point solve, float64); the warp samples the source at M^-1 p
    A = np.concatenate([src.astype(np.float64), np.ones((3, 1))], axis=1)  # rows (x, y, 1)
    m = np.linalg.solve(A[None], dst.astype(np.float64)).transpose(0, 2, 1)  # [N, 2, 3]
    minv = invert_affine(m)
    x = warp_affine_reflect101(x, minv)

    dx = (alpha * gaussian(fields[0], sigma, mode="reflect", truncate=3)).astype(np.float32)
    dy = (alpha * gaussian(fields[1], sigma, mode="reflect", truncate=3)).astype(np.float32)
    rows = np.arange(size, dtype=np.float64)[None, :, None] + dy
    cols = np.arange(size, dtype=np.float64)[None, None, :] + dx
    out = bilinear_sample(x, rows, cols, "reflect", dtype=np.float64).astype(np.float32)
    return to_uint8(out)


# ---------------------------------------------------------------------------------- pixelate
def _box_pass(a: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    """One Pillow ``BOX`` resampling pass of uint8 data along ``axis`` (§2.8), rounded to 8 bits."""
    n_in = a.shape[axis]
    if n_out == n_in:
        return a
    if n_out > n_in:  # upscaling: nearest neighbour with half-pixel centres
        idx = ((2 * np.arange(n_out) + 1) * n_in) // (2 * n_out)
        return np.take(a, idx, axis=axis)
    # downscaling: source j (centre j + 1/2) belongs to the output whose footprint (o s, (o+1) s] holds it
    j = np.arange(n_in)
    owner = -((-(2 * j + 1) * n_out) // (2 * n_in)) - 1  # ceil((j + 1/2) n_out / n_in) - 1
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])  # each output owns a contiguous run
    count = np.diff(np.r_[starts, n_in])
    if count.max() <= 2:  # always the case for pixelate (n_out > n_in / 2): mean of 1 or 2 sources
        first = np.take(a, starts, axis=axis).astype(np.uint16)
        first += np.take(a, starts + count - 1, axis=axis)
        first += 1
        first >>= 1  # floor((x1 + x2)/2 + 1/2); a single source gives (2x + 1) >> 1 = x
        return first.astype(np.uint8)
    shape = [1] * a.ndim
    shape[axis] = n_out
    count = count.reshape(shape)
    sums = np.add.reduceat(a.astype(np.int32), starts, axis=axis)
    return ((2 * sums + count) // (2 * count)).astype(np.uint8)  # floor(mean + 1/2), exact integers


def box_resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pillow ``resize((w, h), BOX)`` of uint8 ``[N, H, W, C]``: horizontal pass, then vertical."""
    w_out, h_out = size
    return _box_pass(_box_pass(a, 2, w_out), 1, h_out)


def pixelate(u: np.ndarray, c: float, ctx: Context) -> np.ndarray:
    """§3.14: BOX-downscale to ``int(S c)`` and BOX-upscale back (bit-equal to Pillow; tested)."""
    size = u.shape[1]
    side = int(size * c)
    return box_resize(box_resize(u, (side, side)), (size, size))


def jpeg_compression(u: np.ndarray, quality: int, ctx: Context) -> np.ndarray:
    """§3.15: Pillow JPEG encode (4:2:0, baseline, default tables at ``quality``) and decode.

    Inherently per image: the codec works on one image at a time.
    """
    out = np.empty_like(u)
    buf = io.BytesIO()
    for i in range(u.shape[0]):
        buf.seek(0)
        buf.truncate()
        Image.fromarray(u[i]).save(buf, "JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as im:
            out[i] = np.asarray(im.convert("RGB"))
    return out


def saturate(u: np.ndarray, p: tuple, ctx: Context) -> np.ndarray:
    """§3.19: ``S <- clip01(S s_mul + s_add)`` through the HSV round trip (sev 1-2 desaturate, 3-5 boost)."""
    mul, add = p
    hsv = rgb_to_hsv(to_float(u))
    hsv[..., 1] = np.clip(hsv[..., 1] * mul + add, 0, 1)
    return to_uint8(hsv_to_rgb(hsv))
