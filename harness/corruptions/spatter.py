"""spatter (extra, weather; CORRUPTIONS.md §3.18) and the OpenCV-free image operators it needs.

All operators are batched over a leading image axis ``[N, H, W]``:

* :func:`canny` - OpenCV-style Canny (3x3 Sobel with replicated border, L1 magnitude, 4-direction
  non-maximum suppression, 8-connected hysteresis);
* :func:`chamfer_distance` - two-pass 5x5 chamfer distance (weights 1, 1.4, 2.1969 = OpenCV
  ``distanceTransform(DIST_L2, 5)``), each pass vectorised per row with a running minimum;
* :func:`equalize_hist` - OpenCV ``equalizeHist`` as written out in the spec.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from harness.corruptions.common import Context, gaussian, to_float, to_uint8

__all__ = ["canny", "chamfer_distance", "equalize_hist", "spatter"]

_TG22 = 13573  # round(tan(22.5 deg) * 2**15): the integer direction test of OpenCV's Canny


def canny(img: np.ndarray, low: float, high: float) -> np.ndarray:
    """Boolean edge map of uint8 ``[N, H, W]`` images (OpenCV ``Canny(img, low, high)`` semantics).

    * gradients: 3x3 Sobel, replicated border; magnitude ``|gx| + |gy|``;
    * non-maximum suppression, direction from the integer tangent test (22.5° / 67.5° sectors):
      horizontal ``m > left and m >= right``, vertical ``m > up and m >= down``, diagonal strictly
      greater than both diagonal neighbours; magnitudes outside the image count as 0;
    * candidates: NMS survivors with ``m > low``; strong: candidates with ``m > high``; an edge is a
      candidate 8-connected (through candidates) to a strong one.
    """
    p = np.pad(img.astype(np.int32), ((0, 0), (1, 1), (1, 1)), mode="edge")
    tl, tc, tr = p[:, :-2, :-2], p[:, :-2, 1:-1], p[:, :-2, 2:]
    ml, mr = p[:, 1:-1, :-2], p[:, 1:-1, 2:]
    bl, bc, br = p[:, 2:, :-2], p[:, 2:, 1:-1], p[:, 2:, 2:]
    gx = (tr + 2 * mr + br) - (tl + 2 * ml + bl)
    gy = (bl + 2 * bc + br) - (tl + 2 * tc + tr)
    ax, ay = np.abs(gx), np.abs(gy)  # int32 is ample: |g| <= 1020, ax * TG22 + (ax << 16) < 2**31
    mag = ax + ay
    mp = np.pad(mag, ((0, 0), (1, 1), (1, 1)))  # zeros outside the image
    c = mp[:, 1:-1, 1:-1]
    left, right = mp[:, 1:-1, :-2], mp[:, 1:-1, 2:]
    up, down = mp[:, :-2, 1:-1], mp[:, 2:, 1:-1]
    ul, ur, dl, dr = mp[:, :-2, :-2], mp[:, :-2, 2:], mp[:, 2:, :-2], mp[:, 2:, 2:]
    tg22x = ax * _TG22
    ys = ay << 15
    horiz = ys < tg22x
    vert = ~horiz & (ys > tg22x + (ax << 16))
    same_sign = (gx ^ gy) >= 0  # gradient along the down-right / up-left diagonal
    keep = np.where(
        horiz,
        (c > left) & (c >= right),
        np.where(
            vert,
            (c > up) & (c >= down),
            np.where(same_sign, (c > ul) & (c > dr), (c > ur) & (c > dl)),
        ),
    )
    cand = keep & (mag > low)
    strong = cand & (mag > high)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connectivity inside each image, never across the batch axis
    labels, nlab = ndi.label(cand, structure=structure)
    good = np.zeros(nlab + 1, dtype=bool)
    good[labels[strong]] = True
    good[0] = False
    return good[labels]


def _chamfer_pass(d: np.ndarray, a: np.float32, b: np.float32, c: np.float32) -> None:
    """Forward (top-down, left-right) chamfer pass, in place, on float32 ``[H, W, N]`` (batch last).

    Every candidate is one float32 addition ``neighbour + weight`` and the minimum is exact, as in a
    scalar raster loop; the batch axis is vectorised. The same-row left neighbour makes each row
    sequential in x, so that recurrence is a loop over columns on contiguous ``[N]`` vectors.
    """
    h, w, n = d.shape
    big = np.float32(np.inf)
    prev1 = np.full((w + 4, n), big, dtype=np.float32)
    prev2 = np.full((w + 4, n), big, dtype=np.float32)
    for y in range(h):
        g = d[y]  # [W, N] view, updated in place
        # neighbours in the two rows above (already final in this pass); columns padded by 2
        np.minimum(g, prev1[2:-2] + a, out=g)
        np.minimum(g, prev1[1:-3] + b, out=g)
        np.minimum(g, prev1[3:-1] + b, out=g)
        np.minimum(g, prev1[:-4] + c, out=g)
        np.minimum(g, prev1[4:] + c, out=g)
        np.minimum(g, prev2[1:-3] + c, out=g)
        np.minimum(g, prev2[3:-1] + c, out=g)
        for x in range(1, w):
            np.minimum(g[x], g[x - 1] + a, out=g[x])
        prev2, prev1 = prev1, prev2
        prev1[2:-2] = g


def chamfer_distance(nonzero: np.ndarray) -> np.ndarray:
    """5x5 chamfer distance from every ``True`` pixel to the nearest ``False`` one, float32 ``[N, H, W]``.

    Weights 1 (axial), 1.4 (diagonal), 2.1969 (knight) in float32; two raster passes, the backward
    one being the forward pass on the 180°-rotated map. Bit-identical to
    ``cv2.distanceTransform(DIST_L2, 5)`` of opencv-python 5.0 in our development check. Images without
    any ``False`` pixel get ``inf``.
    """
    a, b, c = np.float32(1.0), np.float32(1.4), np.float32(2.1969)
    d = np.ascontiguousarray(np.where(nonzero, np.float32(np.inf), np.float32(0)).transpose(1, 2, 0))
    _chamfer_pass(d, a, b, c)
    back = np.ascontiguousarray(d[::-1, ::-1])
    _chamfer_pass(back, a, b, c)
    return np.ascontiguousarray(back[::-1, ::-1].transpose(2, 0, 1))


def equalize_hist(img: np.ndarray) -> np.ndarray:
    """OpenCV ``equalizeHist`` of uint8 ``[N, H, W]`` images, per image (§3.18 step 6)."""
    n = img.shape[0]
    npix = img.shape[1] * img.shape[2]
    flat = img.reshape(n, -1)
    hist = np.zeros((n, 256), dtype=np.int64)
    np.add.at(hist, (np.arange(n)[:, None], flat), 1)
    i0 = np.argmax(hist > 0, axis=1)
    at_i0 = hist[np.arange(n), i0]
    cum = np.cumsum(hist, axis=1) - at_i0[:, None]  # #pixels with i0 < level <= v (for v >= i0)
    denom = npix - at_i0
    flat_img = denom == 0
    scale = (np.float32(255) / np.where(flat_img, 1, denom).astype(np.float32))[:, None]
    lut = np.rint(cum.astype(np.float32) * scale).clip(0, 255).astype(np.uint8)
    lut[np.arange(n), i0] = 0
    out = np.take_along_axis(lut, flat.astype(np.int64), axis=1).reshape(img.shape)
    out[flat_img] = img[flat_img]
    return out


_EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.int64)
_WATER = np.array([175, 238, 238], dtype=np.float64) / 255  # pale turquoise, RGB as written
_MUD = np.array([63, 42, 20], dtype=np.float64) / 255  # mud brown, RGB


def spatter(u: np.ndarray, p: tuple, ctx: Context) -> np.ndarray:
    """§3.18: water (severities 1-3) or mud (4-5) splashes from a thresholded, blurred noise field.

    RNG: one ``normal(mu, sigma, (S, S))`` per image; everything else is deterministic and batched.
    Deviation: an image without any liquid (max(m) = 0; the original divides 0/0 and yields NaN) is
    returned unchanged; the spec never observed this case.
    """
    mu, sigma, sigma_b, thr, k, mode = p
    n, size = u.shape[0], u.shape[1]
    x = to_float(u, np.float32)
    liquid = np.empty((n, size, size), dtype=np.float64)
    for i, rng in enumerate(ctx.rngs):
        liquid[i] = rng.normal(mu, sigma, (size, size))
    liquid = gaussian(liquid, sigma_b)
    liquid[liquid < thr] = 0
    if mode == 0:
        # truncating uint8 cast WITHOUT clipping: values >= 256/255 wrap modulo 256, as in the original
        l8 = (np.floor(liquid * 255).astype(np.int64) & 255).astype(np.uint8)
        edges = canny(l8, 50, 150)
        dist = chamfer_distance(~edges)
        np.minimum(dist, np.float32(20), out=dist)
        # cv2.blur on float32: exact 3x3 sum (float64), times 1/9, to float32; then the truncating cast
        box = ndi.correlate(dist.astype(np.float64), np.ones((1, 3, 3)), mode="mirror") * (1.0 / 9.0)
        dist = box.astype(np.float32).astype(np.uint8)
        dist = equalize_hist(dist)
        dist = ndi.correlate(dist.astype(np.int64), _EMBOSS[None], mode="mirror").clip(0, 255)
        box = ndi.correlate(dist, np.ones((1, 3, 3), dtype=np.int64), mode="mirror")
        dist = np.rint(box / 9.0).clip(0, 255).astype(np.float32)
        m = l8.astype(np.float32) * dist
        mx = m.max(axis=(1, 2), keepdims=True)
        m = np.where(mx > 0, m / np.where(mx > 0, mx, 1), 0).astype(np.float32) * np.float32(k)
        y = x + m[..., None] * _WATER.astype(np.float32)
        return to_uint8(y)
    mask = (liquid > thr).astype(np.float32)
    m = gaussian(mask, k)
    m[m < 0.8] = 0
    m = m[..., None]
    y = x * (1 - m) + m * _MUD.astype(np.float32)
    return to_uint8(y)
